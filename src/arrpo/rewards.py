"""From a group's pairwise verdicts to per-sample rewards and advantages (pure Python, torch-free).

A *group* is the set of samples generated for one prompt. :func:`plan_pairs` says which index
pairs are judged; :func:`group_rewards` turns the winners of those pairs into rewards under a
preset:

* ``official`` — the paper's RPO reward: winner ``+win`` (λ = 1.0), loser ``-lose`` (γ = 0.1), used
  directly as the advantage. For groups > 2 a sample's reward moves linearly with its all-pairs
  win rate ``w``: ``-lose + (win + lose) * w`` (so a sample that wins every comparison gets
  ``+win`` and one that loses every comparison ``-lose``).
* ``symmetric`` — ``±scale``; ``scale * (2w - 1)`` for groups > 2.
* ``zscore`` — the reward is the win rate, the advantage its z-score within the group.

A ``tie`` or ``invalid`` verdict carries no preference. With ``on_bad_verdict="mask_group"``
(default; the design's rule for RPO) the whole group gets zero advantage and is masked out of the
loss; with ``"drop_pair"`` only that pair is ignored and a sample left without any valid
comparison is masked. Either way the counts are reported.

The RL trainer and the reward service share this module; it must stay free of torch and numpy.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from arrpo.errors import ArrpoError, BadInputError
from arrpo.vocab import OnBadVerdict, Pairing, RewardPreset, choices

PRESETS: tuple[str, ...] = choices(RewardPreset)
#: Winners that express a preference; anything else ("tie", "invalid", unknown) does not.
_DECISIVE = ("A", "B")


@dataclass(frozen=True)
class GroupRewards:
    """Rewards, advantages and loss mask of one group, with the verdict counts behind them.

    ``mask[k]`` is True when sample ``k`` should contribute to the loss; masked samples always
    have reward and advantage ``0.0``. ``win_rates[k]`` is the sample's share of won valid
    comparisons (``0.0`` when it had none).
    """

    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    win_rates: list[float]
    n_pairs: int
    n_valid: int
    n_tie: int
    n_invalid: int
    notes: list[str] = field(default_factory=list)

    @property
    def masked(self) -> bool:
        """True when no sample of the group is trained on."""
        return not any(self.mask)


class NonFiniteRewardError(ArrpoError, ArithmeticError, kind="error"):
    """A reward or advantage came out NaN or infinite (never returned, never trained on)."""


def check_reward_parameters(
    *, win: float = 1.0, lose: float = 0.1, scale: float = 1.0, clip: float | None = None, eps: float = 1e-6
) -> None:
    """Refuse reward parameters that are not finite or would invert the preference.

    ``win`` and ``lose`` must be finite with ``win + lose > 0`` (the winner gets ``+win``, the loser
    ``-lose``, so the winner's reward is above the loser's) and a finite sum; ``scale`` finite and
    positive; ``clip`` (if given) finite and positive; ``eps`` finite and non-negative.

    Raises:
        BadInputError: naming the parameter and what is wrong with it.
    """
    for name, value in (("win", win), ("lose", lose), ("scale", scale), ("eps", eps)):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInputError(f"{name}: must be a finite number, got {value!r}")
    spread = win + lose
    if not math.isfinite(spread):
        raise BadInputError(f"win + lose overflows ({win!r} + {lose!r}); use smaller rewards")
    if spread <= 0:
        raise BadInputError(
            f"win + lose must be positive (got {win!r} + {lose!r} = {spread!r}): the winner gets +win and "
            "the loser -lose, so this would not reward the preferred image above the other"
        )
    if scale <= 0:
        raise BadInputError(f"scale: must be positive, got {scale!r}")
    if eps < 0:
        raise BadInputError(f"eps: must not be negative, got {eps!r}")
    if clip is not None and (not isinstance(clip, (int, float)) or not math.isfinite(clip) or clip <= 0):
        raise BadInputError(f"clip: must be a finite positive number, got {clip!r}")


def plan_pairs(
    group_size: int, pairing: Pairing = "all_pairs", rng: random.Random | None = None
) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, to judge within a group.

    ``all_pairs``: every unordered pair (1 for 2 samples, 3 for 3, 6 for 4). ``random_pairs``: a
    random perfect matching, each sample judged once (needs an even group size).
    """
    if group_size < 2:
        raise ValueError(f"a group needs at least 2 samples to compare, got {group_size}")
    if pairing == "all_pairs":
        return list(itertools.combinations(range(group_size), 2))
    if pairing == "random_pairs":
        if group_size % 2:
            raise ValueError("random_pairs needs an even group size")
        order = list(range(group_size))
        (rng or random.Random()).shuffle(order)
        return [(min(order[k], order[k + 1]), max(order[k], order[k + 1])) for k in range(0, group_size, 2)]
    raise ValueError(f"unknown pairing {pairing!r}; use 'all_pairs' or 'random_pairs'")


def group_rewards(
    group_size: int,
    pairs: Sequence[tuple[int, int]],
    winners: Sequence[str],
    *,
    preset: RewardPreset = "official",
    win: float = 1.0,
    lose: float = 0.1,
    scale: float = 1.0,
    on_bad_verdict: OnBadVerdict = "mask_group",
    clip: float | None = None,
    eps: float = 1e-6,
) -> GroupRewards:
    """Rewards for one group from the winners of its judged pairs.

    Args:
        group_size: number of samples in the group.
        pairs: judged index pairs ``(i, j)``; ``"A"`` means ``i`` won, ``"B"`` means ``j`` won.
        winners: one of ``"A"``, ``"B"``, ``"tie"``, ``"invalid"`` per pair.
        preset: ``official`` (+win / −lose), ``symmetric`` (±scale) or ``zscore``.
        win, lose: λ and γ of the official preset (the paper: 1.0 and 0.1).
        scale: c of the symmetric preset.
        on_bad_verdict: ``mask_group`` or ``drop_pair`` (see the module docstring).
        clip: optional absolute clamp of the advantages.
        eps: added to the standard deviation by ``zscore``.

    Raises:
        ValueError: mismatched lengths, out-of-range indices, unknown preset or policy, reward
            parameters that are not finite or would rank the loser above the winner
            (:class:`arrpo.errors.BadInputError`, a ``ValueError``).
    """
    check_reward_parameters(win=win, lose=lose, scale=scale, clip=clip, eps=eps)
    if preset not in PRESETS:
        raise ValueError(f"unknown reward preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if on_bad_verdict not in ("mask_group", "drop_pair"):
        raise ValueError(f"on_bad_verdict must be 'mask_group' or 'drop_pair', not {on_bad_verdict!r}")
    if len(pairs) != len(winners):
        raise ValueError(f"{len(pairs)} pairs but {len(winners)} winners: one winner per pair is needed")
    for i, j in pairs:
        if not (0 <= i < group_size and 0 <= j < group_size) or i == j:
            raise ValueError(f"pair ({i}, {j}) is not a pair of distinct indices below {group_size}")

    n_tie = sum(w == "tie" for w in winners)
    n_invalid = sum(w not in (*_DECISIVE, "tie") for w in winners)
    wins = [0] * group_size
    games = [0] * group_size
    for (i, j), winner in zip(pairs, winners, strict=True):
        if winner not in _DECISIVE:
            continue
        games[i] += 1
        games[j] += 1
        wins[i if winner == "A" else j] += 1
    rates = [wins[k] / games[k] if games[k] else 0.0 for k in range(group_size)]
    n_valid = len(pairs) - n_tie - n_invalid

    def masked_out(note: str) -> GroupRewards:
        zeros = [0.0] * group_size
        return GroupRewards(
            list(zeros), list(zeros), [False] * group_size, rates,
            len(pairs), n_valid, n_tie, n_invalid, [note],
        )

    if n_valid == 0:
        return masked_out("no valid comparison in the group")
    if (n_tie or n_invalid) and on_bad_verdict == "mask_group":
        return masked_out(f"group masked: {n_tie} tie and {n_invalid} invalid verdict(s)")

    mask = [g > 0 for g in games]
    if preset == "official":
        rewards = [-lose + (win + lose) * r for r in rates]
        advantages = list(rewards)
    elif preset == "symmetric":
        rewards = [scale * (2.0 * r - 1.0) for r in rates]
        advantages = list(rewards)
    else:  # zscore
        rewards = list(rates)
        kept = [r for r, m in zip(rates, mask, strict=True) if m]
        mean = sum(kept) / len(kept)
        std = (sum((r - mean) ** 2 for r in kept) / len(kept)) ** 0.5
        advantages = [(r - mean) / (std + eps) for r in rates]

    if clip is not None:
        advantages = [max(-clip, min(clip, a)) for a in advantages]
    notes = []
    if not all(mask):
        notes.append(f"{mask.count(False)} sample(s) without a valid comparison masked")
    rewards = [r if m else 0.0 for r, m in zip(rewards, mask, strict=True)]
    advantages = [a if m else 0.0 for a, m in zip(advantages, mask, strict=True)]
    if not all(math.isfinite(v) for v in (*rewards, *advantages)):
        # unreachable with checked parameters; a last guard so no NaN/inf reward ever trains a model
        raise NonFiniteRewardError(f"non-finite reward computed (rewards {rewards}, advantages {advantages})")
    return GroupRewards(
        rewards=rewards,
        advantages=advantages,
        mask=mask,
        win_rates=rates,
        n_pairs=len(pairs),
        n_valid=n_valid,
        n_tie=n_tie,
        n_invalid=n_invalid,
        notes=notes,
    )
