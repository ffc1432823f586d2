"""Resuming ``arrpo train`` after a kill: checkpoints are written atomically, a damaged latest
checkpoint falls back to an older one, and none readable is a one-line error (exit 2)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from arrpo.cli import app

runner = CliRunner()


def _config(tmp_path, tiny_dir):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red apple\na blue car\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"preset: tiny-cpu\nmodel:\n  pretrained: {tiny_dir}\ndata:\n  prompts: {prompts}\n"
        f"train:\n  iterations: 2\n  prompts_per_iteration: 1\n  output_dir: {tmp_path / 'run'}\n"
        "  checkpoint_every: 1\n  keep_checkpoints: 3\n  tensorboard: false\n"
        "optim:\n  accumulate_samples: 2\n"
    )
    return config


def _tear(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_torn_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_dirs):
    config = _config(tmp_path, tiny_dirs["sd3"])
    first = runner.invoke(app, ["train", "--config", str(config)])
    assert first.exit_code == 0, first.output
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["it000001", "it000002"]
    assert not list(checkpoints.glob("*/*.tmp"))  # written through a temporary file, then renamed
    _tear(checkpoints / "it000002" / "rank0.pt")  # as a kill in the middle of torch.save left it

    again = runner.invoke(app, ["train", "--config", str(config), "--iterations", "3"])

    assert again.exit_code == 0, again.output
    assert f"resumed from {checkpoints / 'it000001'}" in again.output.replace("\n", "")
    assert "3 iterations" in again.output
    # iteration 2 was done again from checkpoint 1: logged once, by the run that kept it
    logged = [json.loads(line)["iteration"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3]

    for rank0 in checkpoints.glob("*/rank0.pt"):
        _tear(rank0)
    broken = runner.invoke(app, ["train", "--config", str(config), "--iterations", "4"])
    assert broken.exit_code == 2, broken.output
    assert "no checkpoint could be loaded" in broken.output and "--no-resume" in broken.output
