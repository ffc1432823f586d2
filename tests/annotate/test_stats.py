"""Position bias and inter-annotator agreement, against numbers worked out by hand."""

from __future__ import annotations

import pytest

from arrpo.annotate.stats import agreement, binomial_two_sided_p, cohen_kappa, position_bias


def test_cohen_kappa_matches_a_hand_computed_table():
    # 10 items: both A on 4, both B on 3, A/B on 2, B/A on 1 → po = 0.7; pe = 0.6*0.5 + 0.4*0.5 = 0.5
    first = ["A"] * 4 + ["B"] * 3 + ["A"] * 2 + ["B"]
    second = ["A"] * 4 + ["B"] * 3 + ["B"] * 2 + ["A"]
    assert cohen_kappa(first, second) == pytest.approx((0.7 - 0.5) / 0.5)
    assert cohen_kappa(["A", "A"], ["A", "A"]) is None      # chance agreement 1: undefined
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["A", "B", "tie"], ["A", "B", "tie"]) == pytest.approx(1.0)


def test_agreement_uses_only_shared_pairs():
    result = agreement({"p1": "A", "p2": "B", "p3": "A"}, {"p2": "B", "p3": "B", "p4": "A"})
    assert (result.shared, result.agree, result.raw) == (2, 1, 0.5)
    assert agreement({"p1": "A"}, {"p2": "A"}).raw is None


def test_binomial_p_value():
    assert binomial_two_sided_p(5, 10) == pytest.approx(1.0)
    assert binomial_two_sided_p(10, 10) == pytest.approx(2 / 1024)
    assert binomial_two_sided_p(0, 10) == pytest.approx(2 / 1024)
    assert binomial_two_sided_p(8, 10) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert binomial_two_sided_p(0, 0) == 1.0


def test_position_bias_and_accuracy_by_side():
    answers = [
        ("left", "A", "A"), ("left", "B", "A"), ("left", "A", None), ("right", "B", "B"),
        ("tie", "A", "A"),
    ]
    bias = position_bias(answers)
    assert (bias.decisive, bias.left) == (4, 3) and bias.left_rate == 0.75
    # preferred image shown left (shown_left == label): answers 1 (right), 4 (chose right: wrong)
    # and 5 (a tie: wrong) → 1/3; shown right: answer 2 (chose left: wrong) → 0; answer 3 has no label
    assert bias.acc_left == pytest.approx(1 / 3) and bias.acc_right == pytest.approx(0.0)
    assert bias.delta == pytest.approx(1 / 3)
