"""What else was tried to bring the tournament's rank fidelity up at the same calls (issue 21), and
what it gave. Nothing here is used by arrpo: these are the alternatives measured and set aside.

The judge, the groups and Kendall τ are :mod:`pairing_fidelity`'s. Three studies, each as τ and
its paired difference to a reference on the same groups (± 95 %):

* ``estimators``: on the *same* tournaments (today's Swiss pairs and answers), other ways to turn
  the outcomes into an order than arrpo's (Bradley–Terry MAP of the decisive verdicts, mid-ranks):
  posterior-mean ranks under a Laplace approximation; a fit of every single answer (under order
  ``both`` the two answers of a pair whose orders disagree are kept instead of becoming a tie that
  ``drop_pair`` ignores) with a "shown first" term estimated jointly (Bradley–Terry with a home
  advantage) and optionally a lapse rate (a share of answers taken as coin flips).
* ``designs``: other ways to choose each round's pairs, all scored by arrpo's rewards: pairs of
  most uncertain order (the matching that maximises Σ P(i > j)·P(j > i) under the Laplace
  posterior), random matchings every round, and today's Swiss pairing.
* ``budget``: at equal calls, R rounds asked in both orders against 2R rounds asked once (in a
  random order, or as given).

    python benchmarks/tournament_alternatives.py --trials 200
    python benchmarks/tournament_alternatives.py --study estimators --groups 16 --profiles sharp
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import random
import time
from collections.abc import Callable

from arrpo.rewards import decisive_games
from arrpo.standings import mid_rank_standings
from arrpo.tournament import Tournament, default_rounds
from pairing_fidelity import PROFILES, SimulatedJudge, _scores, interval, kendall_tau_b

#: One answer: (shown first, shown second, 1.0 if the first was picked else 0.0).
Answer = tuple[int, int, float]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _cholesky_solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    n = len(rhs)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            total = matrix[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            low[i][j] = math.sqrt(max(total, 1e-300)) if i == j else total / low[j][j]
    y = [0.0] * n
    for i in range(n):
        y[i] = (rhs[i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - sum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
    return x


def fit(
    size: int, answers: list[Answer], *, position: bool, lapse: float = 0.0, prior: float = 1.0
) -> tuple[list[float], list[list[float]]]:
    """MAP strengths and their Laplace covariance of ``P(first picked) = lapse/2 + (1 − lapse)·σ(θf − θs + h)``
    (``h`` only with ``position``), arrpo's prior (virtual win and loss per sample, also on ``h``),
    by Fisher scoring with step halving."""
    n = size + (1 if position else 0)
    theta = [0.0] * n

    def chance(t: list[float], first: int, second: int) -> float:
        return lapse / 2 + (1 - lapse) * _sigmoid(t[first] - t[second] + (t[size] if position else 0.0))

    def log_posterior(t: list[float]) -> float:
        value = sum(prior * v - 2 * prior * math.log1p(math.exp(-abs(v))) - 2 * prior * max(v, 0.0) for v in t)
        for first, second, y in answers:
            p = min(max(chance(t, first, second), 1e-300), 1 - 1e-16)
            value += y * math.log(p) + (1 - y) * math.log(1 - p)
        return value

    value = log_posterior(theta)
    for _ in range(60):
        gradient = [prior - 2 * prior * _sigmoid(v) for v in theta]
        info = [[0.0] * n for _ in range(n)]
        for k, v in enumerate(theta):
            info[k][k] = 2 * prior * _sigmoid(v) * (1 - _sigmoid(v))
        for first, second, y in answers:
            s = _sigmoid(theta[first] - theta[second] + (theta[size] if position else 0.0))
            q = lapse / 2 + (1 - lapse) * s
            slope = (1 - lapse) * s * (1 - s)
            score, weight = (y - q) / (q * (1 - q)) * slope, slope * slope / (q * (1 - q))
            for a, sa in zip((first, second, size), (1, -1, 1), strict=True):
                if a == size and not position:
                    continue
                gradient[a] += sa * score
                for b, sb in zip((first, second, size), (1, -1, 1), strict=True):
                    if b != size or position:
                        info[a][b] += sa * sb * weight
        step = _cholesky_solve(info, gradient)
        scale = 1.0
        while True:
            trial = [t + scale * d for t, d in zip(theta, step, strict=True)]
            trial_value = log_posterior(trial)
            if trial_value >= value - 1e-12 * (1 + abs(value)) or scale < 1e-6:
                break
            scale /= 2
        theta, value = trial, trial_value
        if max(abs(scale * d) for d in step) < 1e-9:
            break
    columns = [_cholesky_solve(info, [float(r == c) for r in range(n)]) for c in range(size)]
    return theta[:size], [[columns[c][r] for c in range(size)] for r in range(size)]


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def order_chance(theta: list[float], cov: list[list[float]], i: int, j: int) -> float:
    """P(θi > θj) under the Laplace posterior."""
    var = cov[i][i] + cov[j][j] - 2 * cov[i][j]
    return _phi((theta[i] - theta[j]) / math.sqrt(max(var, 1e-12)))


def posterior_ranks(theta: list[float], cov: list[list[float]]) -> list[float]:
    """Each sample's expected number of others below it."""
    return [sum(order_chance(theta, cov, i, j) for j in range(len(theta)) if j != i) for i in range(len(theta))]


def best_matching(size: int, weight: Callable[[int, int], float]) -> list[tuple[int, int]]:
    """A heavy perfect matching (even ``size``): greedy, then pair swaps while one helps."""
    used: set[int] = set()
    pairs = []
    for _, i, j in sorted(((weight(i, j), i, j) for i, j in itertools.combinations(range(size), 2)), reverse=True):
        if i not in used and j not in used:
            used |= {i, j}
            pairs.append((i, j))
    improved = True
    while improved:
        improved = False
        for a, b in itertools.combinations(range(len(pairs)), 2):
            (i, j), (k, m) = pairs[a], pairs[b]
            for p, q in (((i, k), (j, m)), ((i, m), (j, k))):
                p, q = tuple(sorted(p)), tuple(sorted(q))
                if weight(*p) + weight(*q) > weight(*pairs[a]) + weight(*pairs[b]) + 1e-12:
                    pairs[a], pairs[b], improved = p, q, True
    return pairs


def judge_pair(judge: SimulatedJudge, scores: list[float], i: int, j: int, order: str) -> tuple[str, list[Answer]]:
    """The verdict on ``(i, j)`` and its usable single answers (none when the verdict is invalid)."""
    shown = ["AB", "BA"] if order == "both" else ["AB" if order == "given" or judge.rng.random() < 0.5 else "BA"]
    said = [judge._shown(scores, i, j, s) for s in shown]
    if order == "both":
        from arrpo.judge import combine_orders

        winner = combine_orders(said[0], said[1], "tie")[0]
    else:
        winner = said[0].winner
    if winner == "invalid":
        return winner, []
    answers = []
    for s, a in zip(shown, said, strict=True):
        first, second = (i, j) if s == "AB" else (j, i)
        answers.append((first, second, 1.0 if (a.winner == "A") == (s == "AB") else 0.0))
    return winner, answers


def play(
    scores: list[float], judge: SimulatedJudge, order: str, rounds: int, seed: int, design: str
) -> tuple[Tournament, list[Answer]]:
    """One tournament; ``design`` "swiss" (arrpo's), "uncertain" or "random" chooses rounds 2 on."""
    size = len(scores)
    plan = Tournament(size, seed=seed, rounds=rounds, on_bad_verdict="drop_pair")
    rng, answers, met = random.Random(seed), [], set()
    while pairs := plan.next_round():
        if design == "random" and plan.rounds_played:
            shuffled = rng.sample(range(size), size)
            pairs = plan._pending = [tuple(sorted(shuffled[k:k + 2])) for k in range(0, size, 2)]
        elif design == "uncertain" and plan.rounds_played:
            games = decisive_games(plan.pairs, plan.winners)
            theta, cov = fit(size, [(w, lose, 1.0) for w, lose in games], position=False)

            def weight(i: int, j: int, theta: list[float] = theta, cov: list[list[float]] = cov) -> float:
                p = order_chance(theta, cov, i, j)
                return p * (1 - p) * (0.25 if (i, j) in met else 1.0)

            pairs = plan._pending = best_matching(size, weight)
        winners = []
        for i, j in pairs:
            winner, said = judge_pair(judge, scores, i, j, order)
            winners.append(winner)
            answers.extend(said)
            met.add((i, j))
        plan.record(pairs, winners)
    return plan, answers


def tau_of(scores: list[float], values: list[float], mask: list[bool]) -> float:
    kept = [k for k, m in enumerate(mask) if m]
    return kendall_tau_b([values[k] for k in kept], [scores[k] for k in kept]) if len(kept) > 1 else 0.0


def arrpo_tau(scores: list[float], plan: Tournament) -> float:
    out = plan.rewards()
    return tau_of(scores, out.rewards, out.mask)


def estimators(scores: list[float], plan: Tournament, answers: list[Answer]) -> dict[str, float]:
    size = len(scores)
    games = decisive_games(plan.pairs, plan.winners)
    decided = [any(k in g for g in games) for k in range(size)]
    answered = [any(k in a[:2] for a in answers) for k in range(size)]
    out = {"arrpo (BT MAP of the decisive verdicts)": arrpo_tau(scores, plan)}
    theta, cov = fit(size, [(w, lose, 1.0) for w, lose in games], position=False)
    out["posterior-mean ranks of the verdicts"] = tau_of(scores, mid_rank_standings(posterior_ranks(theta, cov), decided), decided)
    for label, position, lapse in (("answers, position term", True, 0.0), ("answers, position, lapse 0.1", True, 0.1),
                                   ("answers, position, lapse 0.2", True, 0.2), ("answers, lapse 0.1, no position", False, 0.1)):
        theta, cov = fit(size, answers, position=position, lapse=lapse)
        out[f"{label}: MAP"] = tau_of(scores, mid_rank_standings(theta, answered), answered)
        out[f"{label}: posterior ranks"] = tau_of(scores, mid_rank_standings(posterior_ranks(theta, cov), answered), answered)
    return out


def study(name: str, g: int, order: str, profile: tuple[float, float, float], args: argparse.Namespace) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    rounds = default_rounds(g)
    for trial in range(args.trials):
        scores = _scores(args.seed, g, trial)

        def judge(tag: str, trial: int = trial) -> SimulatedJudge:
            return SimulatedJudge(random.Random(f"{args.seed}:{g}:{order}:{trial}:{tag}"), *profile, args.invalid)

        if name == "estimators":
            plan, answers = play(scores, judge("swiss"), order, rounds, trial, "swiss")
            results = estimators(scores, plan, answers)
        elif name == "designs":
            results = {design: arrpo_tau(scores, play(scores, judge(design), order, rounds, trial, design)[0])
                       for design in ("swiss", "uncertain", "random")}
        else:
            results = {
                f"{rounds} rounds, both orders": arrpo_tau(scores, play(scores, judge("both"), "both", rounds, trial, "swiss")[0]),
                f"{2 * rounds} rounds, random order": arrpo_tau(scores, play(scores, judge("random"), "random", 2 * rounds, trial, "swiss")[0]),
                f"{2 * rounds} rounds, given order": arrpo_tau(scores, play(scores, judge("given"), "given", 2 * rounds, trial, "swiss")[0]),
            }
        for label, tau in results.items():
            rows.setdefault(label, []).append(tau)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", nargs="+", default=["estimators", "designs", "budget"], choices=["estimators", "designs", "budget"])
    parser.add_argument("--groups", type=int, nargs="+", default=[16, 24])
    parser.add_argument("--orders", nargs="+", default=["both", "given"], choices=["given", "random", "both"])
    parser.add_argument("--profiles", nargs="+", default=["noisy", "sharp"], choices=list(PROFILES))
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--invalid", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    for name in args.study:
        print(f"\n### {name}: τ, and its paired difference to the first row; {args.trials} groups per row\n")
        print("| judge | G | order | variant | τ | Δτ |\n|---|---|---|---|---|---|")
        for profile_name, g in itertools.product(args.profiles, args.groups):
            for order in (["both"] if name == "budget" else args.orders):
                rows = study(name, g, order, PROFILES[profile_name], args)
                reference = next(iter(rows.values()))
                for label, taus in rows.items():
                    tau, tau_ci = interval(taus)
                    delta, delta_ci = interval([a - b for a, b in zip(taus, reference, strict=True)])
                    shown_order = "equal calls" if name == "budget" else order
                    print(f"| {profile_name} | {g} | {shown_order} | {label} | {tau:.3f} ± {tau_ci:.3f} | {delta:+.3f} ± {delta_ci:.3f} |")
    print(f"\n{time.perf_counter() - start:.0f} s on {platform.machine()}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
