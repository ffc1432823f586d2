"""``arrpo judge`` with the in-process backends and on Ray, through the real command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from arrpo.testing.scripted_server import ChatRequest, Reply

SRC = str(Path(__file__).resolve().parents[2] / "src")
#: No endpoint, an empty HF cache and a Hub address nothing listens on: "no network, no weights".
OFFLINE = {"HF_HOME": "", "HF_ENDPOINT": "http://127.0.0.1:9", "PYTHONPATH": SRC}


def arrpo(*args: str, env: dict | None = None, tmp: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ARRPO_", "OPENAI_", "HF_"))}
    merged = {**base, **OFFLINE, "HF_HOME": str(tmp / "hf"), "ARRPO_CACHE_DIR": str(tmp / "cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, text=True,
                          env=merged, timeout=150)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name, value in (("bright", 220), ("dark", 30)):
        Image.new("RGB", (24, 24), (value, value, value)).save(tmp_path / f"{name}.png")
    return tmp_path


def test_default_local_model_without_network_is_a_clear_error(images, tmp_path):
    result = arrpo("judge", str(images / "bright.png"), str(images / "dark.png"), "--prompt", "a lamp", tmp=tmp_path)
    assert result.returncode == 2, result.stderr
    err = " ".join(result.stderr.split())  # undo rich's line wrapping
    assert "No VLM endpoint is configured" in err
    assert "Qwen/Qwen3-VL-2B-Instruct" in err
    assert "hf download Qwen/Qwen3-VL-2B-Instruct" in err and "--endpoint" in err
    assert "Traceback" not in result.stderr


@pytest.fixture
def terse_llava_dir(tiny_llava_dir, tmp_path) -> Path:
    """The tiny LLaVA with every token a stop token: each answer ends after one step (the CLI asks
    for up to 1024 tokens, which a random model would fill, slowly)."""
    folder = tmp_path / "terse"
    shutil.copytree(tiny_llava_dir, folder)
    config_path = folder / "generation_config.json"
    config = json.loads(config_path.read_text())
    vocab = json.loads((folder / "config.json").read_text())["text_config"]["vocab_size"]
    config["eos_token_id"] = list(range(vocab))
    config_path.write_text(json.dumps(config))
    return folder


def test_local_transformers_model_judges_a_pair(images, tmp_path, terse_llava_dir):
    result = arrpo("judge", str(images / "bright.png"), str(images / "dark.png"), "--prompt", "a lamp", "--json",
                   "--backend", "transformers", "--model", str(terse_llava_dir), "--device", "cpu",
                   "--order", "both", tmp=tmp_path)
    assert result.returncode == 1, result.stderr  # random text: an invalid verdict, reported, no crash
    verdict = json.loads(result.stdout)
    assert verdict["winner"] == "invalid" and len(verdict["answers"]) == 2
    assert all(a["raw"] is not None for a in verdict["answers"])
    assert "Traceback" not in result.stderr


def test_vllm_backend_without_vllm_says_how_to_install(images, tmp_path):
    result = arrpo("judge", str(images / "bright.png"), str(images / "dark.png"), "--prompt", "x",
                   "--backend", "vllm", "--model", "Qwen/Qwen3-VL-8B-Instruct", tmp=tmp_path)
    assert result.returncode == 2
    assert "arrpo[vllm]" in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


def test_unknown_backend_is_refused(images, tmp_path):
    result = arrpo("judge", str(images / "bright.png"), str(images / "dark.png"), "--prompt", "x",
                   "--backend", "tpu", tmp=tmp_path)
    assert result.returncode == 2 and "Invalid value for '--backend'" in result.stderr


def _brighter_wins(request: ChatRequest) -> Reply:
    first, second = (sum(im.convert("L").getdata()) for im in request.images()[-2:])
    return Reply(text=f'{{"rank": {[1, 2] if first > second else [2, 1]}, "reason": "brighter"}}')


def test_batch_on_ray_writes_the_resumable_verdict_file(images, tmp_path, scripted_server):
    server = scripted_server(_brighter_wins)
    lines = [{"id": f"p{i}", "prompt": "a lamp", "image_a": "bright.png" if i % 2 else "dark.png",
              "image_b": "dark.png" if i % 2 else "bright.png"} for i in range(6)]
    lines.append({"id": "bad", "prompt": "x", "image_a": "missing.png", "image_b": "dark.png"})
    pairs = images / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = images / "verdicts.jsonl"
    common = ["judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url,
              "--model", "m", "--no-cache", "--order", "given", "--ray", "local"]
    first = arrpo(*common, tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    verdicts = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert [verdicts[f"p{i}"]["winner"] for i in range(6)] == ["B", "A"] * 3
    assert verdicts["bad"]["winner"] == "invalid" and "bad input" in verdicts["bad"]["invalid_reason"]
    assert server.requests == 6
    again = arrpo(*common, tmp=tmp_path)  # everything done: nothing asked again
    assert again.returncode == 0 and server.requests == 6
    assert len(out.read_text().splitlines()) == 7
