"""The group → rewards mapping shared by the service and the RL trainer."""

from __future__ import annotations

import math

import pytest

from arrpo.rewards import group_rewards, plan_pairs


def test_plan_pairs_is_all_unordered_pairs():
    assert plan_pairs(2) == [(0, 1)]
    assert plan_pairs(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    with pytest.raises(ValueError, match="at least 2"):
        plan_pairs(1)


@pytest.mark.parametrize(("winner", "expected"), [("A", [1.0, -0.1]), ("B", [-0.1, 1.0])])
def test_official_pair_is_plus_one_minus_point_one(winner, expected):
    out = group_rewards(2, [(0, 1)], [winner])
    assert out.rewards == pytest.approx(expected)
    assert out.advantages == pytest.approx(expected)  # used directly as the advantage
    assert out.mask == [True, True]
    assert not out.masked and out.n_valid == 1


def test_official_custom_lambda_gamma():
    out = group_rewards(2, [(0, 1)], ["B"], win=2.0, lose=0.5)
    assert out.rewards == pytest.approx([-0.5, 2.0])


def test_symmetric_is_plus_minus_c():
    out = group_rewards(2, [(0, 1)], ["A"], preset="symmetric", scale=0.5)
    assert out.rewards == pytest.approx([0.5, -0.5])
    assert out.advantages == out.rewards


def test_groups_larger_than_two_use_all_pairs_win_rate():
    # 0 beats everyone, 1 beats 2 and 3, 2 beats 3, 3 loses everything: rates 1, 2/3, 1/3, 0
    pairs = plan_pairs(4)
    winners = ["A", "A", "A", "A", "A", "A"]
    out = group_rewards(4, pairs, winners)
    assert out.win_rates == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert out.rewards == pytest.approx([-0.1 + 1.1 * r for r in (1.0, 2 / 3, 1 / 3, 0.0)])
    assert out.rewards[0] == pytest.approx(1.0) and out.rewards[3] == pytest.approx(-0.1)
    sym = group_rewards(4, pairs, winners, preset="symmetric", scale=1.0)
    assert sym.rewards == pytest.approx([1.0, 1 / 3, -1 / 3, -1.0])


def test_zscore_normalises_within_group():
    out = group_rewards(4, plan_pairs(4), ["B", "A", "A", "A", "A", "A"], preset="zscore")
    # 1 beats 0; rates: 0 -> 2/3, 1 -> 1, 2 -> 1/3, 3 -> 0
    assert out.rewards == pytest.approx([2 / 3, 1.0, 1 / 3, 0.0])
    mean = sum(out.advantages) / 4
    var = sum(a * a for a in out.advantages) / 4
    assert mean == pytest.approx(0.0, abs=1e-9)
    assert var == pytest.approx(1.0, rel=1e-4)
    assert out.advantages[1] > out.advantages[0] > out.advantages[2] > out.advantages[3]


@pytest.mark.parametrize("bad", ["tie", "invalid", "garbage"])
def test_tie_or_invalid_masks_the_group_by_default(bad):
    out = group_rewards(3, plan_pairs(3), ["A", bad, "B"])
    assert out.masked and out.mask == [False, False, False]
    assert out.rewards == [0.0, 0.0, 0.0] and out.advantages == [0.0, 0.0, 0.0]
    assert (out.n_tie, out.n_invalid) == ((1, 0) if bad == "tie" else (0, 1))
    assert "masked" in out.notes[0]


def test_drop_pair_ignores_only_the_bad_pair_and_masks_orphans():
    # pairs (0,1) valid, (0,2) invalid, (1,2) invalid: sample 2 has no valid comparison
    out = group_rewards(3, plan_pairs(3), ["A", "invalid", "tie"], on_bad_verdict="drop_pair")
    assert out.mask == [True, True, False]
    assert out.rewards == pytest.approx([1.0, -0.1, 0.0])
    assert out.n_valid == 1 and out.n_invalid == 1 and out.n_tie == 1
    assert "masked" in out.notes[0]


def test_all_invalid_is_masked_whatever_the_policy():
    out = group_rewards(2, [(0, 1)], ["invalid"], on_bad_verdict="drop_pair")
    assert out.masked and out.rewards == [0.0, 0.0]
    assert "no valid comparison" in out.notes[0]


def test_zscore_with_all_equal_rates_gives_zero_not_nan():
    # a 3-cycle: everyone wins once
    out = group_rewards(3, [(0, 1), (1, 2), (0, 2)], ["A", "A", "B"], preset="zscore")
    assert out.win_rates == pytest.approx([0.5, 0.5, 0.5])
    assert all(a == 0.0 and not math.isnan(a) for a in out.advantages)


def test_bad_arguments_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match="unknown reward preset"):
        group_rewards(2, [(0, 1)], ["A"], preset="softmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one winner per pair"):
        group_rewards(2, [(0, 1)], [])
    with pytest.raises(ValueError, match="distinct indices"):
        group_rewards(2, [(0, 2)], ["A"])
    with pytest.raises(ValueError, match="on_bad_verdict"):
        group_rewards(2, [(0, 1)], ["A"], on_bad_verdict="keep")  # type: ignore[arg-type]


def test_module_is_torch_free():
    import subprocess
    import sys

    code = "import sys, arrpo.rewards; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_client_and_adapters_import_without_torch_numpy_or_fastapi():
    import subprocess
    import sys

    code = (
        "import sys, arrpo.client, arrpo.server.protocol, arrpo.integrations.flow_grpo, "
        "arrpo.integrations.flow_factory, arrpo.integrations.dance_grpo, arrpo.integrations.groups\n"
        "heavy = [m for m in ('torch', 'numpy', 'fastapi', 'uvicorn') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
