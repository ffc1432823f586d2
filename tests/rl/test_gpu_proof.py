"""``benchmarks/gpu_proof.py`` through its command line, at tiny sizes on the CPU: every phase of the
two RPO families and of the in-process judge runs through arrpo's own code, the table and the JSON
have their shape, the budget stops a run and still writes what it measured, and the dry run plans
without allocating. (On a GPU the same command runs the real sizes; see docs/training.md.)"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("torchvision") is None:
    pytest.skip("the tiny Qwen processors (Qwen-Image-Edit's, Qwen3-VL's) need torchvision", allow_module_level=True)

pytestmark = pytest.mark.slow  # a tiny run of all three parts: about a minute on a 2-core CPU
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_proof.py"
RPO_PHASES = ("build", "setup", "rollout", "encode", "decode", "judge (stand-in)", "replay + backward", "optimizer step")
PER_ITERATION = RPO_PHASES[2:]
JUDGE_PHASES = ("build", "warm-up", "prefill + 1 new token", "prefill + 6 new tokens", "preprocess", "judge one pair")


def run_proof(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("proof") / "proof.json"
    result = run_proof("--tiny", "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, json.loads(out.read_text())


def _phases(results: dict, part: str) -> dict[tuple[str, int | None], dict]:
    return {(row["phase"], row["iteration"]): row for row in results["phases"] if row["part"] == part}


def _named(phases: dict, prefix: str, iteration: int | None) -> dict:
    found = [row for (name, it), row in phases.items() if name.startswith(prefix) and it == iteration]
    assert len(found) == 1, f"{prefix!r} (iteration {iteration}) in {sorted(phases)}"
    return found[0]


def test_every_part_finishes_and_says_where_it_ran(tiny_run):
    _, results = tiny_run
    assert results["complete"] is True
    assert results["scale"] == "tiny" and results["dtype"] == "bfloat16"
    assert {name: info["status"] for name, info in results["parts"].items()} == dict.fromkeys(("flux", "qwen-edit", "judge"), "done")
    assert {"torch", "diffusers", "transformers", "peft", "python", "device"} <= set(results["machine"])


@pytest.mark.parametrize(("part", "steps", "rank"), [("flux", 8, 16), ("qwen-edit", 10, 32)])
def test_each_rpo_phase_runs_under_the_official_preset(tiny_run, part, steps, rank):
    _, results = tiny_run
    info, phases = results["parts"][part], _phases(results, part)
    for prefix in RPO_PHASES[:2]:
        assert _named(phases, prefix, None)["seconds"] > 0
    first, last = info["iterations"]
    for iteration, metrics in zip((1, 2), (first, last), strict=True):
        # FLUX's preset steps AdamW every 4 samples (2 iterations), Qwen-Edit's every 2 (each).
        stepped = metrics["optimizer_steps"] > (0 if iteration == 1 else first["optimizer_steps"])
        for prefix in PER_ITERATION if stepped else PER_ITERATION[:-1]:
            row = _named(phases, prefix, iteration)
            assert row["segments"] >= 1 and row["seconds"] > 0
            assert row["peak_gib"] is None  # no device memory to read on a CPU
        assert stepped or not any(name.startswith("optimizer") and it == iteration for name, it in phases)
    assert (part == "flux") == (first["optimizer_steps"] == 0)
    assert _named(phases, "encode", 2)["depth"] == _named(phases, "optimizer step", 2)["depth"] == 1
    settings = info["settings"]
    assert (settings["steps"], settings["lora_rank"], settings["group"]) == (steps, rank, 2)
    assert settings["gradient_checkpointing"] is True
    assert info["params"]["lora"] > 0 and info["params"]["transformer"] > info["params"]["lora"]
    # The first replay of a fresh rollout reproduces its log-probs: the ratio is exactly 1.
    assert first["ratio_min"] == first["ratio_max"] == 1.0
    assert first["trained_fraction"] == last["trained_fraction"] == 1.0  # the stand-in judge masks nothing
    assert last["optimizer_steps"] >= 1 and last["skipped_updates"] == 0
    assert last["grad_norm"] is not None and last["grad_norm"] > 0


def test_the_judge_part_prefills_two_images_and_decodes_new_tokens(tiny_run):
    _, results = tiny_run
    phases = _phases(results, "judge")
    for prefix in JUDGE_PHASES:
        assert _named(phases, prefix, None)["seconds"] > 0
    settings = results["parts"]["judge"]["settings"]
    assert settings["image_tokens"] == [4, 4]  # 64² px in 16-px patches merged 2×2
    assert settings["prompt_tokens"] > sum(settings["image_tokens"]) + 100  # the judge prompt and rubric
    assert 1 <= settings["new_tokens_generated"] <= settings["new_tokens_asked"] == 6
    assert 1 <= settings["judge_new_tokens"] <= 6  # the whole judge call asked for as many
    assert settings["verdict"] in ("A", "B", "tie", "invalid")
    assert isinstance(settings["decode_s_per_new_token"], float)  # (pair − prefill) / (new tokens − 1)


def test_the_table_lists_every_phase_of_the_last_iteration(tiny_run):
    result, results = tiny_run
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("part ") and "peak GiB" in line)
    rows = [line.split() for line in lines[header + 1:] if line.split() and line.split()[0] in results["parts"]]
    shown = [row for row in results["phases"] if row["iteration"] in (None, 2)]
    assert len(rows) == len(shown)
    assert any("replay" in " ".join(row) for row in rows) and any("prefill" in " ".join(row) for row in rows)


def test_a_spent_budget_stops_the_run_and_keeps_the_json(tmp_path):
    out = tmp_path / "proof.json"
    result = run_proof("--tiny", "--device", "cpu", "--only", "judge", "--budget-s", "0", "--out", str(out))
    assert result.returncode == 2, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["complete"] is False
    assert results["parts"]["judge"]["status"].startswith("stopped: budget")
    assert results["phases"] == []


def test_the_dry_run_plans_without_running(tmp_path):
    out = tmp_path / "proof.json"
    result = run_proof("--tiny", "--dry-run", "--only", "flux", "--only", "judge", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "plan" in result.stdout and "transformer" in result.stdout and "GiB at peak" in result.stdout
    assert "qwen-edit" not in result.stdout
    assert not out.exists()


def test_an_unknown_part_is_refused():
    result = run_proof("--only", "sd3")
    assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.mark.gpu
def test_tiny_on_cuda_reports_peak_memory(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    out = tmp_path / "proof.json"
    result = run_proof("--tiny", "--device", "cuda", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["phases"]
    assert rows and all(row["peak_gib"] is not None and row["peak_gib"] >= 0 for row in rows)
