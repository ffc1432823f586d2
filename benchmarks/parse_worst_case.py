"""Seconds to parse answers built to make a parser slow, at two sizes.

Each pattern repeats one piece (``<think>``, braces, quotes, ranks in prose, …) to the given
length and times :func:`arrpo.parse.parse_rank_answer` on it (best of 3). A linear parser takes
about ten times longer at ten times the size; a quadratic one a hundred times.

    python benchmarks/parse_worst_case.py                    # 80,000 and 800,000 characters
    python benchmarks/parse_worst_case.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import platform
import time

from arrpo.parse import parse_rank_answer

PATTERNS = {
    "<think> repeated": "<think>",
    "</think> repeated": "</think>",
    "<think>a</think> pairs": "<think>a</think>",
    "``` repeated": "```",
    "{ repeated (unclosed)": "{",
    "{} repeated": "{} ",
    "nested objects": '{"a":',
    "[ inside an object": "[",
    '" inside an object': '"',
    "' inside an object": " '",
    "backslashes in a string": "\\",
    "rank: [1, 2] repeated": "rank: [1, 2] ",
    "digits after rank: [": "1",
    "prose": "Image 1 is better. ",
    "refusal phrases": "I'm sorry ",
}
PREFIX = {"[ inside an object": "{", '" inside an object': "{", "' inside an object": "{",
          "backslashes in a string": '{"', "digits after rank: [": "rank: ["}


def build(name: str, size: int) -> str:
    piece = PATTERNS[name]
    body = (piece * (size // len(piece) + 1))[:size]
    return PREFIX.get(name, "") + body


def best_of(text: str, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        parse_rank_answer(text)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[80_000, 800_000])
    args = parser.parse_args()
    print(f"{platform.machine()}, Python {platform.python_version()}; seconds per answer, best of 3")
    print(" | ".join(["pattern", *(f"{n:,} chars" for n in args.sizes), "ratio"]))
    print(" | ".join(["---"] * (len(args.sizes) + 2)))
    for name in PATTERNS:
        times = [best_of(build(name, size)) for size in args.sizes]
        ratio = times[-1] / times[0] if times[0] > 0 else float("nan")
        print(" | ".join([name, *(f"{t:.4f}" for t in times), f"{ratio:.1f}x"]))


if __name__ == "__main__":
    main()
