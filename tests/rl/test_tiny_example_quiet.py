"""The tiny CPU example (examples/rpo-tiny-cpu.yaml through ``arrpo train``) prints no warning at
each iteration: its prompts fit the tiny tokenizer's 16 tokens (no truncation notice), nothing
replaces ``optimizer.step`` behind the LR schedule, and the judging loop is not left open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_tiny_example_trains_without_warnings(tmp_path, tiny_dirs):
    config = yaml.safe_load((ROOT / "examples" / "rpo-tiny-cpu.yaml").read_text())
    config["model"]["pretrained"] = tiny_dirs["sd3"]
    config["data"]["prompts"] = str(ROOT / "examples" / "prompts.txt")
    config["train"].update(iterations=2, output_dir=str(tmp_path / "run"), checkpoint_every=0, gallery_every=0)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "always", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "arrpo", "train", "--config", str(path)], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "done: 2 iterations" in result.stdout + result.stderr
    noise = [line for line in result.stderr.splitlines()
             if any(word in line for word in ("truncated", "optimizer.step()", "lr_scheduler", "unclosed event loop",
                                              "getdata", "Warning"))]
    assert noise == []
