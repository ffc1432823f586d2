"""The tournament pairing (arrpo.tournament): rounds, determinism, costs, bad verdicts, rewards."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter

import pytest

from arrpo.errors import BadInputError
from arrpo.judge import PairwiseJudge
from arrpo.rewards import PRESETS, decisive_games, group_rewards, plan_pairs
from arrpo.schema import Comparison, Verdict
from arrpo.testing.scripted_server import Reply
from arrpo.tournament import (
    Tournament,
    comparisons_per_group,
    default_rounds,
    run_tournament,
    vlm_calls_per_group,
    winner_of,
)
from arrpo.vlm import build_backend


def perfect(scores):
    """Winners of a judge that always prefers the higher true score."""
    return lambda pairs: ["A" if scores[i] > scores[j] else "B" for i, j in pairs]


def play(plan: Tournament, decide) -> Tournament:
    while pairs := plan.next_round():
        plan.record(pairs, decide(pairs))
    return plan


def coin(seed):
    rng = random.Random(seed)
    return lambda pairs: [rng.choice("AB") for _ in pairs]


# ------------------------------------------------------------------ rounds and determinism
@pytest.mark.parametrize("size", [2, 3, 4, 5, 7, 8, 13, 16, 24, 25])
def test_no_sample_twice_in_a_round(size):
    rng = random.Random(size)
    plan = Tournament(size, seed=size, on_bad_verdict="drop_pair", rounds=default_rounds(size) + 2)
    while pairs := plan.next_round():
        members = [k for pair in pairs for k in pair]
        assert len(members) == len(set(members)) == 2 * (size // 2)
        assert all(0 <= i < j < size for i, j in pairs)
        plan.record(pairs, [rng.choice(["A", "B", "tie", "invalid"]) for _ in pairs])


def test_same_seed_and_outcomes_give_the_same_pairs():
    rng = random.Random(1)
    scores = [rng.random() for _ in range(16)]
    first = play(Tournament(16, seed="step3:prompt7"), perfect(scores)).pairs
    again = play(Tournament(16, seed="step3:prompt7"), perfect(scores)).pairs
    assert first == again
    other = play(Tournament(16, seed="step3:prompt8"), perfect(scores)).pairs
    assert other[:8] != first[:8]  # another seed, another first round


def test_later_rounds_follow_the_outcomes():
    plan = Tournament(8, seed=0)
    first = plan.next_round()
    plan.record(first, ["A"] * 4)
    winners = {i for i, _ in first}
    second = plan.next_round()
    # winners meet winners, losers meet losers; nobody meets a past opponent
    assert all((i in winners) == (j in winners) for i, j in second)
    assert not set(second) & set(first)


def test_next_round_repeats_until_recorded_and_record_checks_the_round():
    plan = Tournament(6, seed=1)
    pairs = plan.next_round()
    assert plan.next_round() == pairs
    with pytest.raises(ValueError, match="next_round"):
        plan.record(pairs[:-1], ["A"] * (len(pairs) - 1))
    with pytest.raises(ValueError, match="one winner per pair"):
        plan.record(pairs, ["A"])
    plan.record([list(p) for p in pairs], ["A"] * len(pairs))  # lists are accepted as pairs
    assert plan.rounds_played == 1
    with pytest.raises(ValueError, match="next_round"):
        plan.record(pairs, ["A"] * len(pairs))  # the same round twice


def test_pairs_rarely_repeat():
    repeats = total = 0
    for size in range(4, 33):
        for seed in range(5):
            plan = play(Tournament(size, seed=seed, on_bad_verdict="drop_pair"), coin(seed))
            repeats += len(plan.pairs) - len(set(plan.pairs))
            total += len(plan.pairs)
    assert repeats / total < 0.01  # measured 0.5 %: only when the middle runs out of fresh partners


def test_the_best_so_far_meets_someone_new():
    plan = Tournament(16, seed=0, rounds=10)
    scores = list(range(16))
    checked = 0
    while pairs := plan.next_round():
        strengths = plan.strengths()
        top = max(strengths)
        if [round(v - top, 9) for v in strengths].count(0.0) == 1:  # a unique leader chooses first
            leader = strengths.index(top)
            met = {p for p in plan.pairs if leader in p}
            assert next(p for p in pairs if leader in p) not in met or len(met) == 15
            checked += 1
        plan.record(pairs, perfect(scores)(pairs))
    assert checked >= 5


def test_rounds_past_a_round_robin_repeat_pairs_rather_than_fail():
    plan = play(Tournament(4, seed=0, rounds=7), coin(0))
    assert len(plan.pairs) == 14 and Counter(plan.pairs).most_common(1)[0][1] >= 2


# ------------------------------------------------------------------ two samples = all_pairs
@pytest.mark.parametrize("winner", ["A", "B", "tie", "invalid", "Image 1"])
@pytest.mark.parametrize("policy", ["mask_group", "drop_pair"])
@pytest.mark.parametrize("preset", PRESETS)
def test_two_samples_are_exactly_all_pairs(winner, policy, preset):
    plan = Tournament(2, seed=99, on_bad_verdict=policy)
    assert plan.next_round() == plan_pairs(2) == [(0, 1)]
    plan.record([(0, 1)], [winner])
    assert plan.next_round() == [] and plan.done
    options = dict(preset=preset, win=1.0, lose=0.1, scale=0.5)
    assert plan.rewards(**options) == group_rewards(2, [(0, 1)], [winner], on_bad_verdict=policy, **options)


# ------------------------------------------------------------------ costs
@pytest.mark.parametrize(
    ("size", "all_pairs", "tournament"),
    [(2, 1, 1), (3, 3, 3), (4, 6, 6), (5, 10, 8), (8, 28, 16), (15, 105, 35), (16, 120, 40), (24, 276, 60),
     (25, 300, 72), (32, 496, 96)],
)
def test_call_counts(size, all_pairs, tournament):
    assert comparisons_per_group(size, "all_pairs") == all_pairs
    assert comparisons_per_group(size, "tournament") == tournament
    assert comparisons_per_group(size, "random_pairs") == size // 2
    assert vlm_calls_per_group(size, "tournament", "both") == 2 * tournament
    assert vlm_calls_per_group(size, "tournament", "given") == vlm_calls_per_group(size, "tournament", "random")
    assert comparisons_per_group(size, "tournament", rounds=2) == 2 * (size // 2)
    played = play(Tournament(size, seed=3, on_bad_verdict="drop_pair"), coin(size))
    assert len(played.pairs) == tournament == default_rounds(size) * (size // 2)


def test_the_issue_targets_on_calls():
    assert comparisons_per_group(16, "tournament") <= comparisons_per_group(16, "all_pairs") / 3
    assert comparisons_per_group(24, "tournament") <= comparisons_per_group(24, "all_pairs") / 4


def test_unknown_pairing_or_order_in_the_cost_model():
    with pytest.raises(ValueError, match="pairing"):
        comparisons_per_group(8, "swiss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order"):
        vlm_calls_per_group(8, "tournament", "sideways")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("size", [1, 0, -3, True, 2.0, "8", None])
def test_a_group_too_small_or_not_a_number_is_refused(size):
    with pytest.raises(BadInputError, match=r"at least 2 samples|must be an integer"):
        Tournament(size)
    with pytest.raises(BadInputError):
        comparisons_per_group(size, "tournament")


def test_a_tournament_of_one_sample_says_why():
    with pytest.raises(BadInputError, match="a group of one has no pair to judge"):
        asyncio.run(run_tournament(1, lambda i, j: asyncio.sleep(0, "A")))


@pytest.mark.parametrize("options", [{"rounds": 0}, {"rounds": 1.5}, {"seed": None}, {"seed": 1.5},
                                     {"on_bad_verdict": "ignore"}])
def test_bad_options_are_refused(options):
    with pytest.raises(BadInputError):
        Tournament(8, **options)


def test_rewards_keep_the_tournament_policy():
    plan = play(Tournament(4, seed=0, on_bad_verdict="drop_pair"), coin(0))
    with pytest.raises(TypeError, match="on_bad_verdict"):
        plan.rewards(on_bad_verdict="mask_group")


# ------------------------------------------------------------------ ties, invalid, hostile winners
@pytest.mark.parametrize("bad", ["tie", "invalid"])
def test_mask_group_stops_after_the_round_with_a_bad_verdict(bad):
    plan = Tournament(16, seed=0, on_bad_verdict="mask_group")
    first = plan.next_round()
    plan.record(first, ["A"] * 7 + [bad])
    assert plan.next_round() == [] and plan.done  # the rest of the calls are saved
    out = plan.rewards()
    assert out.masked and out.rewards == [0.0] * 16 and out.advantages == [0.0] * 16
    assert (out.n_pairs, out.n_valid, out.n_tie + out.n_invalid) == (8, 7, 1)
    assert out.notes == [f"group masked: {int(bad == 'tie')} tie and {int(bad == 'invalid')} invalid verdict(s)"]


def test_drop_pair_plays_on_ignores_the_pair_and_never_repeats_it():
    plan = Tournament(8, seed=0, on_bad_verdict="drop_pair")
    first = plan.next_round()
    plan.record(first, ["A", "A", "A", "tie"])
    while pairs := plan.next_round():
        assert first[3] not in pairs
        plan.record(pairs, ["A"] * len(pairs))
    out = plan.rewards()
    assert len(plan.pairs) == comparisons_per_group(8, "tournament") and out.n_tie == 1
    assert all(out.mask) and out.n_valid == len(plan.pairs) - 1
    reference = group_rewards(8, plan.pairs, plan.winners, pairing="tournament", on_bad_verdict="drop_pair")
    assert out == reference


def test_drop_pair_masks_a_sample_without_any_valid_comparison():
    plan = Tournament(6, seed=2, on_bad_verdict="drop_pair")
    while pairs := plan.next_round():
        plan.record(pairs, ["invalid" if 0 in pair else "A" for pair in pairs])
    out = plan.rewards()
    assert out.mask == [False] + [True] * 5 and out.rewards[0] == 0.0 and out.advantages[0] == 0.0
    assert "1 sample(s) without a valid comparison masked" in out.notes
    trained = [out.standings[k] for k in range(1, 6)]
    assert max(trained) == 1.0 and min(trained) == 0.0  # ranked among the trained samples only


HOSTILE = ["Image 1", "a", "", "\ud800", "B" * 5000, None, 7, {"winner": "A"}, ["A"], float("nan")]


@pytest.mark.parametrize("policy", ["mask_group", "drop_pair"])
def test_hostile_winners_count_as_invalid(policy):
    plan = Tournament(12, seed=5, on_bad_verdict=policy)
    pairs = plan.next_round()
    winners = ["A", *HOSTILE[: len(pairs) - 1]]
    plan.record(pairs, winners)
    out = play(plan, lambda p: ["B"] * len(p)).rewards(preset="zscore")
    assert out.n_invalid == len(pairs) - 1 and out.n_tie == 0
    assert all(math.isfinite(v) for v in (*out.rewards, *out.advantages))
    if policy == "mask_group":
        assert out.masked and len(plan.pairs) == len(pairs)
    else:
        assert not out.masked and len(plan.pairs) == comparisons_per_group(12, "tournament")


def test_winner_of_reads_strings_and_verdicts_only():
    assert winner_of("B") == "B" and winner_of(Verdict(winner="A")) == "A"
    assert winner_of(None) == "invalid" and winner_of(object()) == "invalid"
    assert winner_of(type("V", (), {"winner": 3})()) == "invalid"


# ------------------------------------------------------------------ odd groups
@pytest.mark.parametrize("size", [3, 5, 7, 15, 25])
def test_odd_groups_give_one_bye_per_round_to_a_sample_that_cannot_be_first_or_last(size):
    scores = [random.Random(size).random() for _ in range(size)]
    plan = Tournament(size, seed=size, rounds=size)
    judged = perfect(scores)
    while pairs := plan.next_round():
        resting = set(range(size)) - {k for pair in pairs for k in pair}
        assert len(resting) == 1
        games = decisive_games(plan.pairs, plan.winners)
        won, lost = {w for w, _ in games}, {lose for _, lose in games}
        if won & lost:  # someone has both won and lost: the bye goes to such a sample
            assert resting <= won & lost
        plan.record(pairs, judged(pairs))
    assert len(plan.pairs) == size * (size // 2)


def test_byes_rotate_while_everyone_can_still_be_first_or_last():
    plan = Tournament(5, seed=0, rounds=2)
    first = plan.next_round()
    plan.record(first, ["A", "A"])
    resting = set(range(5)) - {k for pair in first for k in pair}
    assert resting <= {k for pair in plan.next_round() for k in pair}  # it plays now


# ------------------------------------------------------------------ rewards
@pytest.mark.parametrize("size", [3, 4, 5, 6, 7, 8, 11, 15, 16, 23, 24, 31, 33])
@pytest.mark.parametrize("seed", range(10))
def test_a_perfect_judge_finds_the_best_and_the_worst(size, seed):
    rng = random.Random(f"{size}:{seed}")
    scores = [rng.gauss(0, 1) for _ in range(size)]
    plan = play(Tournament(size, seed=seed), perfect(scores))
    best, worst = scores.index(max(scores)), scores.index(min(scores))
    official = plan.rewards(preset="official", win=1.0, lose=0.1)
    assert official.rewards[best] == 1.0 and official.rewards[worst] == pytest.approx(-0.1)
    assert sorted(official.rewards).count(1.0) == 1 and all(official.mask)
    symmetric = plan.rewards(preset="symmetric", scale=2.0)
    assert symmetric.advantages[best] == 2.0 and symmetric.advantages[worst] == -2.0
    zscore = plan.rewards(preset="zscore")
    assert abs(sum(zscore.advantages)) < 1e-9 and zscore.advantages.index(max(zscore.advantages)) == best


def test_a_perfect_judge_ranks_a_round_robin_exactly_like_all_pairs():
    scores = [0.4, -0.2, 1.3, 0.0]
    plan = play(Tournament(4, seed=0), perfect(scores))  # 4 samples: 3 rounds, every pair once
    assert sorted(plan.pairs) == plan_pairs(4)
    all_pairs = group_rewards(4, plan_pairs(4), perfect(scores)(plan_pairs(4)))
    assert plan.rewards().rewards == pytest.approx(all_pairs.rewards)


def test_zscore_has_zero_mean_over_the_trained_samples():
    plan = Tournament(9, seed=1, on_bad_verdict="drop_pair")
    while pairs := plan.next_round():
        plan.record(pairs, ["invalid" if 4 in (i, j) else "A" if (i + j) % 3 else "B" for i, j in pairs])
    out = plan.rewards(preset="zscore")
    assert not out.mask[4]
    assert abs(sum(a for a, m in zip(out.advantages, out.mask, strict=True) if m)) < 1e-9


@pytest.mark.parametrize("seed", range(30))
def test_rewards_are_finite_and_in_range_for_any_outcomes(seed):
    rng = random.Random(seed)
    size = rng.randrange(2, 30)
    plan = Tournament(size, seed=seed, on_bad_verdict=rng.choice(["mask_group", "drop_pair"]))
    play(plan, lambda pairs: [rng.choice(["A", "B", "A", "B", "tie", "invalid"]) for _ in pairs])
    out = plan.rewards(preset=rng.choice(PRESETS), win=1e300, lose=1e300, clip=3.0)
    assert all(math.isfinite(v) for v in (*out.rewards, *out.advantages, *out.standings))
    assert all(0.0 <= s <= 1.0 for s in out.standings)


def test_plan_pairs_points_tournament_users_to_the_planner():
    with pytest.raises(ValueError, match=r"arrpo\.tournament\.Tournament"):
        plan_pairs(8, "tournament")
    with pytest.raises(ValueError, match="unknown pairing"):
        group_rewards(2, [(0, 1)], ["A"], pairing="swiss")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the async helper
def test_run_tournament_bounds_concurrency_and_keeps_results_in_order():
    rng = random.Random(7)
    scores = [rng.random() for _ in range(16)]
    in_flight = peak = 0

    async def judge_pair(i, j):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return Verdict(id=f"{i}-{j}", winner="A" if scores[i] > scores[j] else "B")

    played = asyncio.run(run_tournament(16, judge_pair, seed=4, concurrency=3))
    assert peak == 3
    assert [v.id for v in played.results] == [f"{i}-{j}" for i, j in played.pairs]
    assert played.pairs == play(Tournament(16, seed=4), perfect(scores)).pairs  # the same tournament
    assert played.rewards().rewards[scores.index(max(scores))] == 1.0


def test_run_tournament_cancels_the_round_when_judging_raises():
    cancelled = []

    async def judge_pair(i, j):
        if (i, j) == first[0]:
            raise RuntimeError("no backend")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append((i, j))
            raise
        return "A"

    first = Tournament(8, seed=0).next_round()
    with pytest.raises(RuntimeError, match="no backend"):
        asyncio.run(run_tournament(8, judge_pair, seed=0))
    assert sorted(cancelled) == sorted(first[1:])


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True])
def test_run_tournament_refuses_a_bad_concurrency(concurrency):
    with pytest.raises(BadInputError, match="concurrency"):
        asyncio.run(run_tournament(4, lambda i, j: asyncio.sleep(0, "A"), concurrency=concurrency))


def test_a_real_judge_drives_the_tournament_in_both_orders(scripted_server, make_image):
    """The wiring callers will use: PairwiseJudge (order both) against a scripted VLM that prefers
    the redder image; every comparison costs two calls and the reddest image wins."""

    def redder_first(request):
        first, second = (image.getpixel((0, 0))[0] for image in request.images())
        return Reply(text='{"rank": [1, 2], "reason": "redder"}' if first > second else
                     '{"rank": [2, 1], "reason": "redder"}')

    server = scripted_server(redder_first)
    judge = PairwiseJudge(build_backend(server.base_url, "m", max_retries=0, cache_path=False), order="both")
    reds = [40, 200, 10, 90, 250, 120, 60, 170, 30, 220]
    images = [make_image((red, 0, 0)) for red in reds]

    async def judge_pair(i, j):
        return await judge.judge(Comparison(prompt="a red car", image_a=images[i], image_b=images[j], id=f"{i}-{j}"))

    played = asyncio.run(run_tournament(len(images), judge_pair, seed="group-0", concurrency=4))
    assert server.requests == vlm_calls_per_group(len(images), "tournament", "both") == 2 * len(played.pairs)
    assert all(v.winner in ("A", "B") and v.orders_agree for v in played.results)
    out = played.rewards()
    assert out.rewards[reds.index(max(reds))] == 1.0 and out.rewards[reds.index(min(reds))] == pytest.approx(-0.1)


def test_the_tournament_imports_without_torch_or_numpy():
    import subprocess
    import sys

    code = (
        "import sys, arrpo.tournament, arrpo.standings, arrpo.rewards\n"
        "heavy = [m for m in ('torch', 'numpy', 'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
