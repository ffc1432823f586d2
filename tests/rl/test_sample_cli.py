"""``arrpo sample``: base vs. trained LoRA on the same seeds, through the real CLI app."""

import json
import re

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from arrpo.cli import app
from arrpo.rl.lora import add_lora, save_diffusers_lora
from arrpo.rl.policies import DEFAULT_LORA_TARGETS, load_policy


def _adapter(tiny_dir, path):
    policy = load_policy("sd3", tiny_dir)
    add_lora(policy.transformer, rank=4, alpha=8, target_modules=DEFAULT_LORA_TARGETS["sd3"])
    for name, p in policy.transformer.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.3)
    save_diffusers_lora(policy.pipe, path)
    return path


def _config(tmp_path, tiny_dir):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"preset: tiny-cpu\nmodel:\n  pretrained: {tiny_dir}\nsampling:\n  num_steps: 3\n")
    return config


def test_sample_renders_base_and_lora_side_by_side(tmp_path, tiny_dirs):
    lora = _adapter(tiny_dirs["sd3"], tmp_path / "final")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red apple\na <b>blue</b> car\n")
    out = tmp_path / "grid"
    args = ["sample", "--config", str(_config(tmp_path, tiny_dirs["sd3"])), "--lora", str(lora),
            "--prompts", str(prompts), "--out", str(out), "--seeds", "2", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 pairs" in result.output
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [(r["prompt"], r["seed"]) for r in rows] == [("a red apple", 0), ("a red apple", 1),
                                                        ("a <b>blue</b> car", 0), ("a <b>blue</b> car", 1)]  # fmt: skip
    page = (out / "index.html").read_text()
    assert "a &lt;b&gt;blue&lt;/b&gt; car" in page  # prompts are escaped
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert not src.startswith("/") and (out / src).is_file()  # relative paths that exist
    base0, lora0 = (np.asarray(Image.open(out / rows[0][k]), dtype=np.int16) for k in ("base", "lora"))
    base1 = np.asarray(Image.open(out / rows[1]["base"]), dtype=np.int16)
    assert np.abs(base0 - lora0).max() > 0  # the adapter is active
    assert np.abs(base0 - base1).max() > 0  # seeds differ


def test_sample_same_seed_same_noise(tmp_path, tiny_dirs):
    """Rendering twice gives the same images: base and LoRA share the seed's noise."""
    lora = _adapter(tiny_dirs["sd3"], tmp_path / "final")
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red apple\n")
    outs = []
    for name in ("a", "b"):
        args = ["sample", "--config", str(_config(tmp_path, tiny_dirs["sd3"])), "--lora", str(lora),
                "--prompts", str(prompts), "--out", str(tmp_path / name), "--seeds", "1", "--device", "cpu"]  # fmt: skip
        assert CliRunner().invoke(app, args).exit_code == 0
        outs.append(np.asarray(Image.open(tmp_path / name / "images" / "0000-seed0-lora.png")))
    assert np.array_equal(*outs)


def test_sample_refuses_a_folder_without_an_adapter(tmp_path, tiny_dirs):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red apple\n")
    (tmp_path / "empty").mkdir()
    args = ["sample", "--config", str(_config(tmp_path, tiny_dirs["sd3"])), "--lora", str(tmp_path / "empty"),
            "--prompts", str(prompts), "--out", str(tmp_path / "o"), "--seeds", "1", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "pytorch_lora_weights.safetensors" in result.output


def test_sample_reports_a_missing_pipeline_without_a_traceback(tmp_path, tiny_dirs):
    lora = _adapter(tiny_dirs["sd3"], tmp_path / "final")
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red apple\n")
    args = ["sample", "--config", str(_config(tmp_path, tiny_dirs["sd3"])), "--pretrained", str(tmp_path / "nope"),
            "--lora", str(lora), "--prompts", str(prompts), "--out", str(tmp_path / "o"), "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "cannot load sd3 pipeline" in result.output
