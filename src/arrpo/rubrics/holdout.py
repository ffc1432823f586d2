"""Keep some labelled pairs out of rubric learning, to measure the learned rubric on them.

The split is a pure function of the pair ids, their task/subset and a seed: the same file and
seed always hold out the same pairs, whatever order the file lists them in. It is stratified:
every (task, subset) group gives about its share of held-out pairs (largest remainders), so a
small held-out set still covers every group that is large enough.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

from arrpo.errors import ArrpoError


class HoldoutError(ArrpoError, ValueError, kind="bad_input"):
    """A held-out size that cannot be used (not a count or fraction, or leaves nothing to learn)."""


class _Pair(Protocol):
    id: str
    task: str


P = TypeVar("P", bound=_Pair)


def parse_holdout(spec: str | int | float) -> int | float:
    """``"20"`` → 20 pairs; ``"0.2"`` or ``"20%"`` → a fraction of the pairs.

    Raises:
        HoldoutError: not a positive count or a fraction in (0, 1).
    """
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            value: int | float = float(text[:-1]) / 100
        elif text.isdigit():
            value = int(text)
        else:
            value = float(text)
    except ValueError:
        raise HoldoutError(f"--holdout must be a count (20) or a fraction (0.2 or 20%), not {spec!r}") from None
    if isinstance(value, float) and not (0 < value < 1):
        if value >= 1 and value.is_integer() and not text.endswith("%"):
            return int(value)
        raise HoldoutError(f"--holdout fraction must be between 0 and 1 (got {spec!r})")
    if isinstance(value, int) and value < 1:
        raise HoldoutError(f"--holdout must hold out at least one pair (got {spec!r})")
    return value


def stratum(pair: _Pair) -> tuple[str, str]:
    """The group a pair is stratified in: its task and, when the pair has one, its subset."""
    return (str(pair.task), str(getattr(pair, "subset", None) or "all"))


def _rank(seed: int, pair_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{pair_id}".encode()).hexdigest()


def split_holdout(pairs: Sequence[P], holdout: int | float, seed: int = 0) -> tuple[list[P], list[P]]:
    """(pairs to learn from, held-out pairs), both in the input order, disjoint, together all pairs.

    ``holdout`` is a count or a fraction (see :func:`parse_holdout`).

    Raises:
        HoldoutError: it would hold out no pair or every pair.
    """
    total = len(pairs)
    wanted = round(holdout * total) if isinstance(holdout, float) else holdout
    wanted = max(1, wanted) if total else 0
    if wanted >= total:
        raise HoldoutError(f"holding out {wanted} of {total} pairs would leave none to learn from")
    groups: dict[tuple[str, str], list[P]] = {}
    for pair in pairs:
        groups.setdefault(stratum(pair), []).append(pair)
    quotas = {key: wanted * len(members) / total for key, members in groups.items()}
    counts = {key: math.floor(q) for key, q in quotas.items()}
    by_remainder = sorted(groups, key=lambda k: (-(quotas[k] - counts[k]), k))
    for key in by_remainder[: wanted - sum(counts.values())]:
        counts[key] += 1
    held_ids: set[str] = set()
    for key, members in groups.items():
        ranked = sorted(members, key=lambda p: _rank(seed, p.id))
        held_ids.update(p.id for p in ranked[: counts[key]])
    return [p for p in pairs if p.id not in held_ids], [p for p in pairs if p.id in held_ids]
