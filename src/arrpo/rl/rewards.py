"""From a group's pairwise verdicts to per-sample rewards and advantages (pure, torch-free).

A *group* is the set of samples generated for one prompt. Which pairs get judged is decided by
:func:`plan_pairs`; :func:`group_advantages` turns the verdicts into advantages with a preset:

* ``official`` — the paper: winner ``+win`` (λ = 1.0), loser ``-lose`` (γ = 0.1), the reward *is*
  the advantage (no normalisation). For groups > 2 a sample's reward interpolates linearly in its
  win rate ``w``: ``-lose + (win + lose) * w``.
* ``symmetric`` — ``±c`` (``c * (2w - 1)`` for groups > 2).
* ``zscore`` — win rates normalised within the group (zero mean, unit std).

A ``tie`` or ``invalid`` verdict carries no preference. With ``on_bad_verdict="mask_group"`` (the
default, as specified) the whole group gets zero advantage and is excluded from the loss; with
``"drop_pair"`` only that pair is ignored and samples left without a valid comparison are masked.
Either way the tie/invalid counts are reported.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Literal

Preset = Literal["official", "symmetric", "zscore"]
Pairing = Literal["all_pairs", "random_pairs"]
OnBad = Literal["mask_group", "drop_pair"]


@dataclass(frozen=True)
class GroupOutcome:
    """Rewards, advantages and loss mask of one group, with verdict counts."""

    rewards: list[float]
    advantages: list[float]
    mask: list[bool]  # True = this sample contributes to the loss
    wins: list[float]  # per-sample win rate over valid comparisons (nan-free; 0 if none)
    n_pairs: int
    n_tie: int
    n_invalid: int
    notes: list[str] = field(default_factory=list)

    @property
    def masked(self) -> bool:
        """True when no sample of the group is trained on."""
        return not any(self.mask)


def plan_pairs(group_size: int, pairing: Pairing = "all_pairs", rng: random.Random | None = None):
    """Index pairs ``(i, j)`` to judge within a group of ``group_size`` samples.

    ``all_pairs``: every unordered pair (1 for 2 samples, 3 for 3, 6 for 4). ``random_pairs``: a
    random perfect matching (each sample judged exactly once; needs an even group size).
    """
    if group_size < 2:
        raise ValueError("a group needs at least 2 samples to be compared")
    if pairing == "all_pairs":
        return list(itertools.combinations(range(group_size), 2))
    if pairing == "random_pairs":
        if group_size % 2:
            raise ValueError("random_pairs needs an even group size")
        order = list(range(group_size))
        (rng or random.Random()).shuffle(order)
        return [tuple(sorted(order[k : k + 2])) for k in range(0, group_size, 2)]
    raise ValueError(f"unknown pairing {pairing!r}")


def group_advantages(
    group_size: int,
    pairs: list[tuple[int, int]],
    winners: list[str],
    *,
    preset: Preset = "official",
    win: float = 1.0,
    lose: float = 0.1,
    scale: float = 1.0,
    on_bad_verdict: OnBad = "mask_group",
    clip: float | None = None,
    eps: float = 1e-6,
) -> GroupOutcome:
    """Advantages for one group from the winners (``"A"``: first of the pair, ``"B"``, ``"tie"``,
    ``"invalid"``) of the judged ``pairs``.

    Args:
        preset: ``official`` (+win / −lose), ``symmetric`` (±scale) or ``zscore``.
        win, lose: λ and γ of the official preset.
        scale: c of the symmetric preset.
        on_bad_verdict: ``mask_group`` or ``drop_pair`` (see module docstring).
        clip: optional absolute clamp of the advantages.
    """
    if len(pairs) != len(winners):
        raise ValueError("one winner per judged pair is needed")
    n_tie = sum(w == "tie" for w in winners)
    n_invalid = sum(w not in ("A", "B", "tie") for w in winners)
    wins = [0.0] * group_size
    games = [0] * group_size
    for (i, j), w in zip(pairs, winners, strict=True):
        if w not in ("A", "B"):
            continue
        games[i] += 1
        games[j] += 1
        wins[i if w == "A" else j] += 1.0
    rate = [wins[k] / games[k] if games[k] else 0.0 for k in range(group_size)]
    zero = [0.0] * group_size
    if (n_tie + n_invalid and on_bad_verdict == "mask_group") or not any(games):
        note = "no valid comparison" if not any(games) else "tie/invalid verdict masks the group"
        return GroupOutcome(zero, zero, [False] * group_size, rate, len(pairs), n_tie, n_invalid, [note])
    mask = [g > 0 for g in games]
    if preset == "official":
        rewards = [-lose + (win + lose) * r for r in rate]
        adv = list(rewards)
    elif preset == "symmetric":
        rewards = [scale * (2 * r - 1) for r in rate]
        adv = list(rewards)
    elif preset == "zscore":
        rewards = list(rate)
        valid = [r for r, m in zip(rate, mask, strict=True) if m]
        mean = sum(valid) / len(valid)
        std = (sum((r - mean) ** 2 for r in valid) / len(valid)) ** 0.5
        adv = [(r - mean) / (std + eps) if m else 0.0 for r, m in zip(rate, mask, strict=True)]
    else:
        raise ValueError(f"unknown reward preset {preset!r}")
    rewards = [r if m else 0.0 for r, m in zip(rewards, mask, strict=True)]
    adv = [a if m else 0.0 for a, m in zip(adv, mask, strict=True)]
    if clip is not None:
        adv = [max(-clip, min(clip, a)) for a in adv]
    return GroupOutcome(rewards, adv, mask, rate, len(pairs), n_tie, n_invalid)
