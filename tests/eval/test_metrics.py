"""Metrics on hand-computed cases, and bootstrap intervals that cover the known value."""

from __future__ import annotations

import math
import random

import pytest

from arrpo.eval.metrics import (
    STATISTICS,
    PairOutcome,
    bootstrap_interval,
    bootstrap_intervals,
    by_subset,
    forward_accuracy,
    mean_accuracy,
    outcome_from_record,
    summarize,
)

# label, forward winner, reverse winner
CASES = [
    ("A", "A", "A"),        # right both ways
    ("B", "B", "A"),        # right forward only (position-biased)
    ("A", "B", "B"),        # wrong both ways, consistent
    ("B", "invalid", "B"),  # invalid forward: counts as wrong, not consistent
    ("tie", "tie", "A"),    # tie label: only a tie answer is right
]


def outcomes():
    return [PairOutcome(label=lab, forward=f, reverse=r, subset="x" if i < 3 else "y", calls=2 + (i == 3),
                        prompt_tokens=100, completion_tokens=10, wall_s=0.5)
            for i, (lab, f, r) in enumerate(CASES)]


def test_hand_computed_values():
    s = summarize(outcomes(), resamples=0)
    v = s.values
    assert v["forward"] == pytest.approx(3 / 5)      # cases 1, 2, 5
    assert v["reverse"] == pytest.approx(2 / 5)      # cases 1, 4
    assert v["mean"] == pytest.approx(0.5)
    assert v["delta"] == pytest.approx(1 / 5)
    assert v["consistency"] == pytest.approx(2 / 5)  # cases 1, 3
    assert v["tie_rate"] == pytest.approx(1 / 10)
    assert v["invalid_rate"] == pytest.approx(1 / 10)
    assert s.calls_per_pair == pytest.approx(11 / 5)
    assert s.tokens_per_pair == 110 and s.wall_s_per_pair == 0.5
    subsets = by_subset(outcomes(), resamples=0)
    assert list(subsets) == ["x", "y"]
    assert subsets["x"].values["forward"] == pytest.approx(2 / 3)
    assert subsets["y"].values["reverse"] == pytest.approx(1 / 2)


def test_empty_is_nan_not_an_error():
    s = summarize([], resamples=100)
    assert s.n == 0 and math.isnan(s.values["forward"]) and s.intervals == {}


def test_record_conversion():
    from arrpo.eval.rundir import EvalRecord

    record = EvalRecord.model_validate({
        "id": "p", "judge": "j", "label": "A", "subset": "s", "wall_s": 1.5,
        "forward": {"shown_first": "A", "winner": "A", "correct": True, "attempts": 2, "calls": 3,
                    "prompt_tokens": 7, "completion_tokens": 1},
        "reverse": {"shown_first": "B", "winner": "invalid", "correct": False},
    })
    o = outcome_from_record(record)
    assert (o.forward_correct, o.reverse_correct, o.consistent, o.calls, o.wall_s) == (True, False, False, 3, 1.5)
    assert (o.prompt_tokens, o.completion_tokens, o.subset) == (7, 1, "s")


def test_bootstrap_is_seeded_and_covers_the_known_value():
    exact = [PairOutcome("A", "A" if i < 70 else "B", "A" if i < 50 else "B") for i in range(100)]
    low, high = bootstrap_interval(exact, mean_accuracy, resamples=500, seed=1)
    assert low < 0.6 < high and high - low < 0.2
    assert (low, high) == bootstrap_interval(exact, mean_accuracy, resamples=500, seed=1)
    rng, covered, trials = random.Random(7), 0, 40
    for trial in range(trials):
        sample = [PairOutcome("A", "A" if rng.random() < 0.7 else "B", "A") for _ in range(120)]
        low, high = bootstrap_interval(sample, forward_accuracy, resamples=200, seed=trial)
        covered += low <= 0.7 <= high
    assert covered >= 0.85 * trials


def test_bootstrap_resamples_pairs_with_both_orders_together():
    # every pair is right forward and wrong in reverse: any resample of PAIRS has mean 0.5 and Δ 1,
    # while resampling the 2N order answers independently would give a wide interval
    biased = [PairOutcome("A", "A", "B") for _ in range(60)]
    assert bootstrap_interval(biased, mean_accuracy, resamples=200, seed=3) == (0.5, 0.5)
    s = summarize(biased, resamples=200, seed=3)
    assert s.intervals["delta"] == (1.0, 1.0) and s.intervals["consistency"] == (0.0, 0.0)


def test_vectorised_intervals_equal_the_statistic_applied_to_each_resample():
    rng = random.Random(11)
    answers = ("A", "B", "tie", "invalid")
    sample = [PairOutcome(rng.choice("AB"), rng.choice(answers), rng.choice(answers)) for _ in range(150)]
    together = bootstrap_intervals(sample, resamples=300, seed=5)
    assert set(together) == set(STATISTICS)
    for name, statistic in STATISTICS.items():
        # a wrapper is not one of STATISTICS, so it takes the generic path over the same resamples
        generic = bootstrap_interval(sample, lambda o, f=statistic: f(o), resamples=300, seed=5)
        assert together[name] == pytest.approx(generic, abs=1e-12)
        assert bootstrap_interval(sample, statistic, resamples=300, seed=5) == together[name]
        assert together[name][0] <= statistic(sample) <= together[name][1]
    assert bootstrap_intervals(sample, resamples=300, seed=6) != together
    summary = summarize(sample, resamples=300, seed=5)
    assert summary.intervals == {k: together[k] for k in ("forward", "reverse", "mean", "delta", "consistency")}


def test_summary_table_lists_subsets_only_when_they_break_the_pairs_down():
    from arrpo.eval.report import markdown_summary

    def metrics(subset_of):
        cases = [PairOutcome(label=lab, forward=f, reverse=r, subset=subset_of(i)) for i, (lab, f, r) in enumerate(CASES)]
        data = {"overall": summarize(cases, resamples=0).to_dict(),
                "subsets": {k: v.to_dict() for k, v in by_subset(cases, resamples=0).items()}}
        return {"pairs": len(cases), "forward": "preferred_first", "judges": {"j": data}}

    one = markdown_summary(metrics(lambda i: "all")).splitlines()
    assert [line for line in one if line.startswith("| j |")] == [line for line in one if line.startswith("| j | all |")]
    assert len([line for line in one if line.startswith("| j |")]) == 1  # no second "all" row
    two = markdown_summary(metrics(lambda i: "x" if i < 3 else "y")).splitlines()
    assert [line.split("|")[2].strip() for line in two if line.startswith("| j |")] == ["all", "x", "y"]
