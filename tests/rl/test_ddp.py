"""Two-process DDP on CPU (gloo): the paths only a multi-process run exercises — gradient all-reduce
with ``no_sync``, a non-finite loss on one rank, and the CLI's final checkpoint and resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import arrpo

WORKER = Path(__file__).with_name("ddp_worker.py")
SRC = str(Path(arrpo.__file__).resolve().parents[1])


def _launch(argv: list[str], cwd: Path, timeout: float = 240) -> list[subprocess.CompletedProcess]:
    """Run ``argv`` as ranks 0 and 1 of a 2-process group; a hang counts as a failure."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "ACCELERATE_USE_CPU": "true",  # what `accelerate launch --cpu` sets
               "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}  # fmt: skip
        procs.append(subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a rank hung (no exit within {timeout}s)")
        results.append(subprocess.CompletedProcess(argv, p.returncode, out))
    for r in results:
        assert r.returncode == 0, r.stdout[-3000:]
    return results


def _worker(tmp_path, tiny_dirs, **spec) -> list[dict]:
    spec = {"pretrained": tiny_dirs["sd3"], "out": str(tmp_path), **spec}
    _launch([sys.executable, str(WORKER), json.dumps(spec)], tmp_path)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.slow
def test_ranks_stay_identical_and_skip_together_on_a_non_finite_loss(tmp_path, tiny_dirs):
    """Each rank trains on its own prompts; gradients are averaged, so the adapters stay identical.
    A NaN loss on rank 1 alone must skip that update on both ranks (no hang, no divergence)."""
    ranks = _worker(tmp_path, tiny_dirs, nan_rank=1, nan_iteration=1)
    assert [r["skipped"] for r in ranks] == [1, 1]
    assert [r["steps"] for r in ranks] == [2, 2]
    a, b = (r["lora"] for r in ranks)
    assert all(torch.equal(a[k], b[k]) for k in a), "the ranks' LoRA weights diverged"
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k), "no update reached the adapter"


@pytest.mark.slow
def test_main_process_evaluation_does_not_desynchronise_the_ranks(tmp_path, tiny_dirs):
    """eval_every samples on the main process alone; that must bypass DDP's collectives."""
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("a yellow kite\n")
    ranks = _worker(tmp_path, tiny_dirs, eval_every=1, eval_prompts=str(held_out))
    assert all(v is not None for v in ranks[0]["eval"]) and all(v is None for v in ranks[1]["eval"])
    a, b = (r["lora"] for r in ranks)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_cli_final_checkpoint_resumes_on_every_rank(tmp_path, tiny_dirs):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red apple\na blue car\na green robot\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"preset: tiny-cpu\nmodel:\n  pretrained: {tiny_dirs['sd3']}\ndata:\n  prompts: {prompts}\n"
        f"sampling:\n  num_steps: 3\ntrain:\n  iterations: 3\n  prompts_per_iteration: 1\n"
        f"  output_dir: {tmp_path / 'run'}\n  checkpoint_every: 2\n  gallery_every: 0\n  tensorboard: false\n"
        "optim:\n  accumulate_samples: 2\n"
    )
    cli = [sys.executable, "-m", "arrpo", "train", "--config", str(config)]
    _launch(cli, tmp_path)
    final = tmp_path / "run" / "checkpoints" / "it000003"
    assert sorted(p.name for p in final.glob("rank*.pt")) == ["rank0.pt", "rank1.pt"]
    again = _launch([*cli, "--iterations", "4"], tmp_path)
    assert "resumed from" in again[0].stdout and "4 iterations" in again[0].stdout
