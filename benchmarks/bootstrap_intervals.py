"""Bootstrap intervals of ``arrpo report``: the first pure-Python version against the vectorised one.

Builds synthetic judged pairs (a judge 70 % right, some ties and invalid answers, a position bias)
split into subsets, and times what ``write_report`` computes: intervals of five statistics for all
pairs and for every subset. "before" is the first implementation (every statistic resampled on its
own, one Python list per resample), kept here as the reference; "after" is
``arrpo.eval.metrics.summarize`` / ``by_subset``. Prints one table row per pair count.

    python benchmarks/bootstrap_intervals.py                      # 5,000 pairs, 4 subsets, 1,000 resamples
    python benchmarks/bootstrap_intervals.py --pairs 1000 5000 --subsets 8
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Sequence

from arrpo.eval.metrics import STATISTICS, PairOutcome, by_subset, summarize

NAMES = ("forward", "reverse", "mean", "delta", "consistency")


def legacy_interval(outcomes: Sequence[PairOutcome], statistic, resamples: int, seed: int,
                    level: float = 0.95) -> tuple[float, float]:
    """The first implementation: one ``random.Random`` resample list per draw, per statistic."""
    n = len(outcomes)
    rng = random.Random(seed)
    values = sorted(statistic([outcomes[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    tail = (1 - level) / 2
    return values[int(tail * (resamples - 1))], values[round((1 - tail) * (resamples - 1))]


def legacy_report(outcomes: Sequence[PairOutcome], resamples: int, seed: int) -> None:
    groups: dict[str, list[PairOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.subset, []).append(outcome)
    for group in [list(outcomes), *groups.values()]:
        for name in NAMES:
            legacy_interval(group, STATISTICS[name], resamples, seed)


def vectorised_report(outcomes: Sequence[PairOutcome], resamples: int, seed: int) -> None:
    summarize(outcomes, resamples=resamples, seed=seed)
    by_subset(outcomes, resamples=resamples, seed=seed)


def synthetic(n: int, subsets: int, seed: int = 0) -> list[PairOutcome]:
    rng = random.Random(seed)

    def answer(label: str, bias: float) -> str:
        r = rng.random()
        if r < 0.03:
            return "invalid"
        if r < 0.06:
            return "tie"
        return label if rng.random() < 0.7 + bias else ("B" if label == "A" else "A")

    outcomes = []
    for i in range(n):
        label = rng.choice("AB")
        outcomes.append(PairOutcome(label, answer(label, 0.1), answer(label, -0.1), subset=f"s{i % subsets}"))
    return outcomes


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[5000])
    parser.add_argument("--subsets", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-before", action="store_true", help="Time only the vectorised version.")
    args = parser.parse_args()
    print(f"# {platform.machine()}, {platform.python_version()}, {args.resamples} resamples, "
          f"{len(NAMES)} statistics, overall + {args.subsets} subsets")
    vectorised_report(synthetic(50, 2), 10, 0)  # warm-up: numpy's import is not part of the timing
    print("| pairs | before (s) | after (s) | speed-up |")
    print("|---:|---:|---:|---:|")
    for n in args.pairs:
        outcomes = synthetic(n, args.subsets)
        after = timed(vectorised_report, outcomes, args.resamples, 0)
        if args.skip_before:
            print(f"| {n} | – | {after:.2f} | – |")
            continue
        before = timed(legacy_report, outcomes, args.resamples, 0)
        print(f"| {n} | {before:.2f} | {after:.2f} | {before / after:.0f}× |")


if __name__ == "__main__":
    main()
