"""Pure statistics of human labels: position bias of one annotator, agreement between two."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def binomial_two_sided_p(successes: int, trials: int) -> float:
    """Exact two-sided p-value of ``successes`` in ``trials`` fair coin flips (1.0 for no trials)."""
    if trials <= 0:
        return 1.0
    probs = [math.comb(trials, k) / 2**trials for k in range(trials + 1)]
    observed = probs[successes]
    return min(1.0, sum(p for p in probs if p <= observed * (1 + 1e-9)))


@dataclass(frozen=True)
class PositionBias:
    """How often an annotator chose the left image, and (with known labels) accuracy per side.

    ``left_rate`` is the share of decisive answers (not ties, not skips) that picked the left image;
    0.5 means no position preference. ``delta`` is accuracy when the preferred image was on the
    left minus accuracy when it was on the right (the paper's Δ for people), when the input had
    labels.
    """

    decisive: int
    left: int
    p_value: float
    acc_left: float | None = None
    acc_right: float | None = None

    @property
    def left_rate(self) -> float | None:
        return self.left / self.decisive if self.decisive else None

    @property
    def delta(self) -> float | None:
        if self.acc_left is None or self.acc_right is None:
            return None
        return self.acc_left - self.acc_right


def position_bias(answers: Sequence[tuple[str, str, str | None]]) -> PositionBias:
    """``answers``: (chosen side ``left``/``right``/``tie``, side shown left ``A``/``B``, given label or None)."""
    decisive = [a for a in answers if a[0] in ("left", "right")]
    left = sum(1 for a in decisive if a[0] == "left")
    by_side: dict[str, list[bool]] = {"left": [], "right": []}
    for chosen, shown_left, given in answers:
        if given not in ("A", "B"):
            continue
        preferred_side = "left" if given == shown_left else "right"
        by_side[preferred_side].append(chosen == preferred_side)
    acc = {side: (sum(v) / len(v) if v else None) for side, v in by_side.items()}
    return PositionBias(decisive=len(decisive), left=left, p_value=binomial_two_sided_p(left, len(decisive)),
                        acc_left=acc["left"], acc_right=acc["right"])


@dataclass(frozen=True)
class Agreement:
    """Agreement of two annotators on the pairs both labelled."""

    shared: int
    agree: int
    kappa: float | None

    @property
    def raw(self) -> float | None:
        return self.agree / self.shared if self.shared else None


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's κ of two aligned label sequences; None when undefined (no items, or chance agreement 1)."""
    n = len(first)
    if n == 0 or n != len(second):
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in set(count_a) | set(count_b)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def agreement(first: Mapping[str, str], second: Mapping[str, str]) -> Agreement:
    """Raw agreement and κ over the pair ids present in both label maps (labels A, B or tie)."""
    shared = sorted(set(first) & set(second))
    a = [first[i] for i in shared]
    b = [second[i] for i in shared]
    return Agreement(shared=len(shared), agree=sum(x == y for x, y in zip(a, b, strict=True)), kappa=cohen_kappa(a, b))
