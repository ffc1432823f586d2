"""Bradley–Terry strengths and mid-rank standings (arrpo.standings), the tournament's reward math."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from arrpo.standings import DEFAULT_PRIOR, bradley_terry, mid_rank_standings


def gradient(theta, games, prior):
    """The log-posterior's gradient, written out independently of the module."""
    g = [prior - 2 * prior / (1 + math.exp(-t)) for t in theta]
    for w, lose in games:
        p = 1 / (1 + math.exp(theta[lose] - theta[w]))
        g[w] += 1 - p
        g[lose] -= 1 - p
    return g


def reference_mm(n, games, prior, sweeps=20_000):
    """Hunter's MM iteration, a slow but independent way to the same maximum."""
    wins = [prior] * n
    opponents = [[] for _ in range(n)]
    for w, lose in games:
        wins[w] += 1
        opponents[w].append(lose)
        opponents[lose].append(w)
    s = [1.0] * n
    for _ in range(sweeps):
        for k in range(n):
            s[k] = wins[k] / (2 * prior / (s[k] + 1) + sum(1 / (s[k] + s[m]) for m in opponents[k]))
    return [math.log(v) for v in s]


@pytest.mark.parametrize("seed", range(12))
def test_fit_is_the_posterior_maximum(seed):
    rng = random.Random(seed)
    n = rng.choice([2, 3, 5, 8, 16, 24])
    games = []
    for _ in range(rng.randrange(0, 3 * n)):
        a, b = rng.sample(range(n), 2)
        games.append((a, b))
    prior = rng.choice([0.1, 0.5, 1.0, 3.0])
    theta = bradley_terry(n, games, prior=prior)
    assert max(abs(v) for v in gradient(theta, games, prior)) < 1e-8
    if seed < 4:  # the slow independent iteration reaches the same point
        assert theta == pytest.approx(reference_mm(n, games, prior), abs=1e-6)


def test_undefeated_and_winless_samples_stay_finite():
    games = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)] * 20  # a strict order, many times over
    theta = bradley_terry(4, games)
    assert all(math.isfinite(t) for t in theta)
    assert theta[0] > theta[1] > theta[2] > theta[3]
    assert bradley_terry(3, []) == [0.0, 0.0, 0.0]  # no games: every sample at the reference


def test_symmetric_records_give_equal_strengths():
    theta = bradley_terry(4, [(0, 1), (2, 3)])  # two winners with mirrored records
    assert theta[0] == pytest.approx(theta[2], abs=1e-12) and theta[1] == pytest.approx(theta[3], abs=1e-12)
    assert mid_rank_standings(theta) == pytest.approx([5 / 6, 1 / 6, 5 / 6, 1 / 6])


def test_a_cycle_leaves_everyone_level():
    theta = bradley_terry(3, [(0, 1), (1, 2), (2, 0)])
    assert mid_rank_standings(theta) == pytest.approx([0.5, 0.5, 0.5])


@pytest.mark.parametrize("prior", [0, -1, math.nan, math.inf, "1"])
def test_bad_prior_refused(prior):
    with pytest.raises(ValueError, match="prior"):
        bradley_terry(2, [(0, 1)], prior=prior)


@pytest.mark.parametrize("game", [(0, 0), (0, 2), (-1, 0)])
def test_bad_game_refused(game):
    with pytest.raises(ValueError, match="distinct samples"):
        bradley_terry(2, [game])


def test_mid_rank_standings_of_a_strict_order_are_the_all_pairs_win_rates():
    scores = [0.3, -1.0, 2.0, 0.9]
    assert mid_rank_standings(scores) == pytest.approx([1 / 3, 0.0, 1.0, 2 / 3])


def test_mid_rank_standings_skip_unranked_samples():
    out = mid_rank_standings([5.0, 1.0, 9.0, 3.0], [True, False, True, True])
    assert out == pytest.approx([0.5, 0.0, 1.0, 0.0])
    assert mid_rank_standings([1.0, 2.0], [True, False]) == [0.5, 0.0]
    with pytest.raises(ValueError):
        mid_rank_standings([1.0], [True, False])


def test_default_prior_is_weak():
    # one real game outweighs the prior's pull: the winner of a single game is clearly ahead
    theta = bradley_terry(2, [(0, 1)])
    assert DEFAULT_PRIOR <= 1.0 and theta[0] > 0.3 > -0.3 > theta[1]


def test_fit_of_every_small_tournament_is_finite():
    for games in itertools.product([(0, 1), (1, 0), (1, 2), (2, 1)], repeat=3):
        assert all(math.isfinite(t) for t in bradley_terry(3, list(games), prior=0.01))
