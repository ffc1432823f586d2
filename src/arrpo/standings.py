"""Standings of a group's samples from decisive pairwise outcomes (pure Python, torch- and numpy-free).

:func:`bradley_terry` fits Bradley–Terry strengths (the posterior maximum, by Newton's method) with a
weak prior: every sample is also credited ``prior`` virtual wins and ``prior`` virtual losses
against a fixed reference of strength 1, so an undefeated (or winless) sample has a finite strength
and the fit is unique even when the comparison graph is not connected. :func:`mid_rank_standings`
maps any scores to ``[0, 1]``: the share of the other ranked samples a sample is above, equal
scores sharing (half a point each) — for a transitive set of outcomes this is exactly the
all-pairs win rate.

Used by :mod:`arrpo.rewards` (the ``tournament`` pairing's rewards) and :mod:`arrpo.tournament`
(pairing samples of similar standing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Virtual wins and losses per sample against the reference: a weak prior, worth one game each way.
DEFAULT_PRIOR = 1.0
#: Log-strengths closer than this count as equal in :func:`mid_rank_standings`.
EQUAL_TOLERANCE = 1e-9
_MAX_NEWTON_STEPS = 100
_CONVERGED = 1e-12


def bradley_terry(
    group_size: int,
    games: Sequence[tuple[int, int]],
    *,
    prior: float = DEFAULT_PRIOR,
) -> list[float]:
    """Log-strengths ``θ_k`` (the reference at 0) of ``P(k beats m) = 1 / (1 + exp(θ_m − θ_k))``.

    The maximum of the posterior (the likelihood of ``games`` times the prior's virtual games),
    found by Newton's method with step halving: the log-posterior is strictly concave, so the
    maximum is unique and reached to machine precision in a few steps (the MM iteration reaches
    the same point but needs hundreds of sweeps under a weak prior).

    Args:
        group_size: number of samples.
        games: one ``(winner, loser)`` per decisive comparison; repeats count again.
        prior: virtual wins and losses per sample against the reference; must be positive.

    Raises:
        ValueError: a non-positive or non-finite prior, an index out of range, or a self-game.
    """
    if not (isinstance(prior, (int, float)) and math.isfinite(prior) and prior > 0):
        raise ValueError(f"prior must be a finite positive number, got {prior!r}")
    for winner, loser in games:
        if not (0 <= winner < group_size and 0 <= loser < group_size) or winner == loser:
            raise ValueError(f"game ({winner}, {loser}) is not between distinct samples below {group_size}")
    theta = [0.0] * group_size
    value = _log_posterior(theta, games, prior)
    for _ in range(_MAX_NEWTON_STEPS):
        gradient, hessian = _derivatives(theta, games, prior)
        step = _solve_positive_definite(hessian, gradient)
        scale = 1.0
        while True:  # halve the step until the posterior does not fall (concave: a few halvings at most)
            trial = [t + scale * d for t, d in zip(theta, step, strict=True)]
            trial_value = _log_posterior(trial, games, prior)
            if trial_value >= value - 1e-12 * (1.0 + abs(value)) or scale < 1e-6:
                break
            scale /= 2.0
        moved = max((abs(scale * d) for d in step), default=0.0)
        theta, value = trial, trial_value
        if moved < _CONVERGED:
            break
    return theta


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _log1pexp(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _log_posterior(theta: Sequence[float], games: Sequence[tuple[int, int]], prior: float) -> float:
    value = sum(-_log1pexp(theta[loser] - theta[winner]) for winner, loser in games)
    # prior virtual wins (θ − log(1 + e^θ)) and losses (−log(1 + e^θ)) against the reference
    return value + sum(prior * t - 2.0 * prior * _log1pexp(t) for t in theta)


def _derivatives(
    theta: Sequence[float], games: Sequence[tuple[int, int]], prior: float
) -> tuple[list[float], list[list[float]]]:
    """Gradient of the log-posterior and its negated Hessian (positive definite)."""
    n = len(theta)
    gradient = [prior - 2.0 * prior * _sigmoid(t) for t in theta]
    hessian = [[0.0] * n for _ in range(n)]
    for k, t in enumerate(theta):
        p = _sigmoid(t)
        hessian[k][k] = 2.0 * prior * p * (1.0 - p)
    for winner, loser in games:
        p = _sigmoid(theta[winner] - theta[loser])  # chance of the observed outcome
        gradient[winner] += 1.0 - p
        gradient[loser] -= 1.0 - p
        w = p * (1.0 - p)
        hessian[winner][winner] += w
        hessian[loser][loser] += w
        hessian[winner][loser] -= w
        hessian[loser][winner] -= w
    return gradient, hessian


def _solve_positive_definite(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """``x`` with ``matrix @ x = rhs`` by Cholesky factorisation (``matrix`` is symmetric positive definite)."""
    n = len(rhs)
    lower = [[0.0] * n for _ in range(n)]
    for i in range(n):
        row = lower[i]
        for j in range(i + 1):
            other = lower[j]
            total = matrix[i][j] - sum(row[k] * other[k] for k in range(j))
            if i == j:
                row[i] = math.sqrt(max(total, 1e-300))
            else:
                row[j] = total / other[j]
    y = [0.0] * n
    for i in range(n):
        y[i] = (rhs[i] - sum(lower[i][k] * y[k] for k in range(i))) / lower[i][i]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - sum(lower[k][i] * x[k] for k in range(i + 1, n))) / lower[i][i]
    return x


def mid_rank_standings(scores: Sequence[float], ranked: Sequence[bool] | None = None) -> list[float]:
    """Each ranked sample's share of the other ranked samples it is above, in ``[0, 1]``.

    A sample scores 1 for every other ranked sample with a lower score and ½ for every one with an
    equal score (within :data:`EQUAL_TOLERANCE`), divided by their number: the unique best gets 1,
    the unique worst 0, all equal get ½. Unranked samples (``ranked[k]`` false) get 0.0 and do
    not count for the others; fewer than two ranked samples all get ½.
    """
    ranked = [True] * len(scores) if ranked is None else list(ranked)
    if len(ranked) != len(scores):
        raise ValueError(f"{len(scores)} scores but {len(ranked)} ranked flags")
    members = [k for k, r in enumerate(ranked) if r]
    others = len(members) - 1
    out = [0.0] * len(scores)
    for k in members:
        if others < 1:
            out[k] = 0.5
            continue
        points = 0.0
        for m in members:
            if m == k:
                continue
            gap = scores[k] - scores[m]
            points += 1.0 if gap > EQUAL_TOLERANCE else 0.5 if gap >= -EQUAL_TOLERANCE else 0.0
        out[k] = points / others
    return out
