"""``arrpo sample`` refuses bad inputs with exit 2 and a message naming the file, before any model
is loaded: a damaged adapter file, an --out that is a file, a prompts file that is not UTF-8."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from arrpo.cli import app
from arrpo.rl.lora import DIFFUSERS_LORA_FILE
from arrpo.rl.sample import LoraLoadError, check_adapter_dir, safetensors_problem

runner = CliRunner()


def _invoke(tmp_path, lora, prompts, out):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"preset: tiny-cpu\nmodel:\n  pretrained: {tmp_path / 'no-pipeline'}\n")
    return runner.invoke(app, ["sample", "--config", str(config), "--lora", str(lora), "--prompts", str(prompts),
                               "--out", str(out), "--device", "cpu"], env={"COLUMNS": "300"})


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a red apple\n")
    return path


@pytest.mark.parametrize("content", [b"x\n", b"", b"\xff" * 8 + b"{}", (20).to_bytes(8, "little") + b"not json at all.....",
                                     (2).to_bytes(8, "little") + b"{}"])
def test_a_damaged_adapter_file_is_refused_before_the_model_loads(tmp_path, prompts, content):
    lora = tmp_path / "final"
    lora.mkdir()
    (lora / DIFFUSERS_LORA_FILE).write_bytes(content)
    result = _invoke(tmp_path, lora, prompts, tmp_path / "grid")
    assert result.exit_code == 2, result.output
    assert "not a usable adapter file" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "grid").exists()


def test_a_real_safetensors_file_passes_the_check(tmp_path):
    lora = tmp_path / "final"
    lora.mkdir()
    save_file({"transformer.x.lora_A.weight": torch.zeros(2, 2)}, str(lora / DIFFUSERS_LORA_FILE))
    assert safetensors_problem(lora / DIFFUSERS_LORA_FILE) is None
    assert check_adapter_dir(lora) == lora / DIFFUSERS_LORA_FILE
    assert issubclass(LoraLoadError, ValueError)


def test_out_that_is_a_file_and_a_binary_prompts_file_exit_2(tmp_path, prompts):
    lora = tmp_path / "final"
    lora.mkdir()
    save_file({"transformer.x.lora_A.weight": torch.zeros(2, 2)}, str(lora / DIFFUSERS_LORA_FILE))
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    result = _invoke(tmp_path, lora, prompts, taken)
    assert result.exit_code == 2 and "is a file" in result.output and taken.read_text() == "keep me"

    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"a\xff\xfeb\n")
    result = _invoke(tmp_path, lora, binary, tmp_path / "grid")
    assert result.exit_code == 2 and "binary.txt: 'utf-8' codec" in result.output.replace("\n", "")


def test_the_grid_shows_tiny_images_at_a_visible_size(tmp_path):
    from PIL import Image

    from arrpo.rl.sample import SampleRow, write_grid

    (tmp_path / "images").mkdir()
    for name in ("b.png", "l.png"):
        Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "images" / name)
    page = write_grid([SampleRow("a <red> apple", 0, "images/b.png", "images/l.png")], tmp_path).read_text()
    assert "min-width:128px" in page and "pixelated" in page and "a &lt;red&gt; apple" in page
