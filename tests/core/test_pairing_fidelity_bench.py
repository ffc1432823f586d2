"""The fidelity benchmark's own math (benchmarks/pairing_fidelity.py): the judge profiles' right-answer
rates, the genie reference the docs quote, and the ``--targets`` check."""

from __future__ import annotations

import importlib.util
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "pairing_fidelity.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("pairing_fidelity", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pairing_fidelity"] = module
    spec.loader.exec_module(module)
    return module


def judge(bench, seed, temperature=0.2, noise=0.05, bias=0.05, invalid=0.0):
    return bench.SimulatedJudge(random.Random(seed), temperature, noise, bias, invalid)


def test_right_answer_rates_of_the_named_judges(bench):
    rates = {name: bench.right_answer_rate(*p, 0.01) for name, p in bench.PROFILES.items()}
    assert rates == pytest.approx({"weak": 0.65, "noisy": 0.74, "sharp": 0.87, "keen": 0.95}, abs=0.006)
    assert bench.right_answer_rate(0.5, 1.0, 0.0, 0.0) == pytest.approx(0.5)  # pure noise: a coin
    assert bench.right_answer_rate(0.5, 0.0, 1.0, 0.0) == pytest.approx(0.5)  # always "Image 1"
    assert bench.right_answer_rate(1e-4, 0.0, 0.0, 0.1) == pytest.approx(0.9, abs=1e-3)


def test_the_answer_model_is_the_simulated_judges(bench):
    """chance_first (the genie's likelihood) is the chance SimulatedJudge.answer picks Image 1."""
    sim = judge(bench, 0, temperature=0.5, noise=0.1, bias=0.15)
    for gap in (-1.0, 0.0, 0.4):
        picks = [sim.answer(gap, 0.0) == "1" for _ in range(20_000)]
        assert statistics.fmean(picks) == pytest.approx(bench.chance_first(gap, 0.5, 0.1, 0.15), abs=0.012)


def test_the_genie_sorts_with_a_perfect_judge_and_learns_nothing_from_a_coin(bench):
    rng = random.Random(3)
    groups = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(12)]
    perfect = [bench.genie_tau(s, 80, judge(bench, k, 1e-3, 0.0, 0.0)) for k, s in enumerate(groups)]
    assert min(perfect) > 0.95
    coin = [bench.genie_tau(s, 80, judge(bench, k, 0.5, 1.0, 0.0)) for k, s in enumerate(groups)]
    assert abs(statistics.fmean(coin)) < 0.15


def test_the_genie_gains_with_calls_and_beats_all_pairs_at_its_calls(bench):
    """More calls, a better genie; with many answers per sample (30 here) it ranks above all_pairs
    at all_pairs' own calls (adaptive location spends no answer on a far pair)."""
    few, many, all_pairs = [], [], []
    for trial in range(30):
        scores = bench._scores(0, 16, trial)
        few.append(bench.genie_tau(scores, 40, judge(bench, f"few{trial}")))
        many.append(bench.genie_tau(scores, 240, judge(bench, f"many{trial}")))
        outcome, _ = bench.judge_group(scores, "all_pairs", "both", judge(bench, f"ap{trial}"), trial, "drop_pair", None)
        all_pairs.append(bench.score_outcome(scores, outcome)[0])
    assert statistics.fmean(many) > statistics.fmean(few) + 0.05
    assert statistics.fmean(many) > statistics.fmean(all_pairs)


def test_targets_check_prints_each_target_and_fails_when_one_is_missed(tmp_path):
    """The noisy judge misses the τ target (the docs' conclusion): exit status 1, every line says why."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--targets", "--groups", "16", "24", "--orders", "both",
         "--profiles", "noisy", "--trials", "12"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("target ")]
    assert len(lines) == 2
    assert "G=16 both tournament: calls 0.333 of all_pairs (≤ 0.333: met)" in lines[0]
    assert "G=24 both tournament: calls 0.217 of all_pairs (≤ 0.250: met)" in lines[1]
    assert all("(≥ −0.05: MISSED)" in line for line in lines)
    assert "targets: 0 of 2 met" in done.stdout
