"""Reward presets: pairings, clipping and groups of 2, 3, 4 (the trainer and the service share them)."""

import random

import pytest

from arrpo.rewards import group_rewards, plan_pairs


def test_plan_pairs_sizes():
    assert plan_pairs(2) == [(0, 1)]
    assert plan_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(plan_pairs(4)) == 6
    matching = plan_pairs(4, "random_pairs", random.Random(0))
    assert len(matching) == 2 and sorted(i for p in matching for i in p) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        plan_pairs(3, "random_pairs")


def test_official_pair():
    out = group_rewards(2, [(0, 1)], ["B"])
    assert out.rewards == pytest.approx([-0.1, 1.0])
    assert out.advantages == pytest.approx([-0.1, 1.0])
    assert out.mask == [True, True] and not out.masked


def test_symmetric_and_zscore_pair():
    assert group_rewards(2, [(0, 1)], ["A"], preset="symmetric", scale=0.5).advantages == pytest.approx([0.5, -0.5])
    assert group_rewards(2, [(0, 1)], ["A"], preset="zscore").advantages == pytest.approx([1.0, -1.0], abs=1e-5)


@pytest.mark.parametrize("bad", ["tie", "invalid"])
def test_tie_or_invalid_masks_the_group(bad):
    out = group_rewards(2, [(0, 1)], [bad])
    assert out.advantages == [0.0, 0.0] and out.masked
    assert (out.n_tie, out.n_invalid) == ((1, 0) if bad == "tie" else (0, 1))


def test_group_of_three_all_pairs():
    # 0 beats 1 and 2; 2 beats 1  -> win rates 1, 0, 0.5
    out = group_rewards(3, [(0, 1), (0, 2), (1, 2)], ["A", "A", "B"])
    assert out.win_rates == pytest.approx([1.0, 0.0, 0.5])
    assert out.advantages == pytest.approx([1.0, -0.1, 0.45])
    z = group_rewards(3, [(0, 1), (0, 2), (1, 2)], ["A", "A", "B"], preset="zscore")
    sd = (1 / 6) ** 0.5
    assert z.advantages == pytest.approx([0.5 / sd, -0.5 / sd, 0.0], abs=1e-4)


def test_group_of_four_with_invalid_pair():
    pairs = plan_pairs(4)
    winners = ["A", "A", "A", "invalid", "A", "A"]  # (1,2) invalid
    assert group_rewards(4, pairs, winners).masked
    kept = group_rewards(4, pairs, winners, on_bad_verdict="drop_pair")
    # wins: 0 beats 1,2,3 ->1; 1 beats 3 (1/2); 2 beats 3 (1/2); 3 -> 0
    assert kept.win_rates == pytest.approx([1.0, 0.5, 0.5, 0.0])
    assert kept.advantages == pytest.approx([1.0, 0.45, 0.45, -0.1])
    assert kept.n_invalid == 1 and all(kept.mask)


def test_random_pairs_group_of_four():
    out = group_rewards(4, [(0, 2), (1, 3)], ["A", "B"], preset="symmetric")
    assert out.advantages == pytest.approx([1.0, -1.0, -1.0, 1.0])


def test_advantage_clip():
    out = group_rewards(2, [(0, 1)], ["A"], preset="symmetric", scale=10.0, clip=5.0)
    assert out.advantages == [5.0, -5.0]
