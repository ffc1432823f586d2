"""From a group's pairwise verdicts to per-sample rewards and advantages (pure Python, torch-free).

A *group* is the set of samples generated for one prompt. :func:`plan_pairs` says which index
pairs are judged (``all_pairs``, ``random_pairs``; the adaptive ``tournament`` is planned round by
round by :class:`arrpo.tournament.Tournament`); :func:`group_rewards` turns the winners of those
pairs into each sample's *standing* ``w`` in ``[0, 1]`` and maps it by a preset:

* ``official`` — the paper's RPO reward: winner ``+win`` (λ = 1.0), loser ``-lose`` (γ = 0.1), used
  directly as the advantage. For groups > 2 a sample's reward moves linearly with its standing:
  ``-lose + (win + lose) * w`` (so the best sample gets ``+win`` and the worst ``-lose``).
* ``symmetric`` — ``±scale``; ``scale * (2w - 1)`` for groups > 2.
* ``zscore`` — the reward is the standing, the advantage its z-score within the group.

The standing is the all-pairs win rate for ``all_pairs`` and ``random_pairs``; for ``tournament``
it is the sample's mid-rank by Bradley–Terry strength among the trained samples
(:mod:`arrpo.standings`): evenly spaced like the win rates of a consistent judge judging all
pairs, the best ``1`` and the worst ``0``, and for two samples exactly the win rate.

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
from arrpo.standings import bradley_terry, mid_rank_standings
from arrpo.vocab import OnBadVerdict, Pairing, RewardPreset, choices

PRESETS: tuple[str, ...] = choices(RewardPreset)
ON_BAD_VERDICT: tuple[str, ...] = choices(OnBadVerdict)
PAIRINGS: tuple[str, ...] = choices(Pairing)
#: Winners that express a preference; anything else ("tie", "invalid", unknown) does not.
_DECISIVE = ("A", "B")


@dataclass(frozen=True)
class GroupRewards:
    """Rewards, advantages and loss mask of one group, with the verdict counts behind them.

    ``mask[k]`` is True when sample ``k`` should contribute to the loss; masked samples always
    have reward and advantage ``0.0``. ``win_rates[k]`` is the sample's share of won valid
    comparisons (``0.0`` when it had none). ``standings[k]`` is the value in ``[0, 1]`` the preset
    mapped to the reward: the win rate for ``all_pairs``/``random_pairs``, the Bradley–Terry
    mid-rank for ``tournament`` (``0.0`` for masked samples).
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
    standings: list[float] = field(default_factory=list)

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
    if pairing == "tournament":
        raise ValueError(
            "the tournament pairing is planned round by round from the outcomes so far; "
            "use arrpo.tournament.Tournament (or run_tournament) instead of plan_pairs"
        )
    raise ValueError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")


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
    pairing: Pairing = "all_pairs",
) -> GroupRewards:
    """Rewards for one group from the winners of its judged pairs.

    Args:
        group_size: number of samples in the group.
        pairs: judged index pairs ``(i, j)``; ``"A"`` means ``i`` won, ``"B"`` means ``j`` won.
        winners: one of ``"A"``, ``"B"``, ``"tie"``, ``"invalid"`` per pair (anything else counts
            as ``invalid``).
        preset: ``official`` (+win / −lose), ``symmetric`` (±scale) or ``zscore``.
        win, lose: λ and γ of the official preset (the paper: 1.0 and 0.1).
        scale: c of the symmetric preset.
        on_bad_verdict: ``mask_group`` or ``drop_pair`` (see the module docstring).
        clip: optional absolute clamp of the advantages.
        eps: added to the standard deviation by ``zscore``.
        pairing: how the pairs were chosen, which says what a sample's standing is:
            ``all_pairs`` / ``random_pairs`` its win rate, ``tournament`` its mid-rank among the
            trained samples by Bradley–Terry strength (:mod:`arrpo.tournament` plans those pairs).

    Raises:
        ValueError: mismatched lengths, out-of-range indices, unknown preset, policy or pairing,
            reward parameters that are not finite or would rank the loser above the winner
            (:class:`arrpo.errors.BadInputError`, a ``ValueError``).
    """
    check_reward_parameters(win=win, lose=lose, scale=scale, clip=clip, eps=eps)
    _check_inputs(group_size, pairs, winners, preset, on_bad_verdict, pairing)
    n_tie = sum(w == "tie" for w in winners)
    n_invalid = sum(w not in (*_DECISIVE, "tie") for w in winners)
    games = decisive_games(pairs, winners)
    rates, played = _win_rates(group_size, games)
    n_valid = len(games)
    counts = {"n_pairs": len(pairs), "n_valid": n_valid, "n_tie": n_tie, "n_invalid": n_invalid}

    def masked_out(note: str) -> GroupRewards:
        zeros = [0.0] * group_size
        return GroupRewards(
            list(zeros), list(zeros), [False] * group_size, rates, **counts, notes=[note], standings=list(zeros)
        )

    if n_valid == 0:
        return masked_out("no valid comparison in the group")
    if (n_tie or n_invalid) and on_bad_verdict == "mask_group":
        return masked_out(f"group masked: {n_tie} tie and {n_invalid} invalid verdict(s)")

    mask = [g > 0 for g in played]
    if pairing == "tournament":
        standings = mid_rank_standings(bradley_terry(group_size, games), mask)
    else:
        standings = list(rates)
    rewards, advantages = preset_rewards(standings, mask, preset=preset, win=win, lose=lose, scale=scale, eps=eps)
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
        rewards=rewards, advantages=advantages, mask=mask, win_rates=rates, **counts, notes=notes,
        standings=[v if m else 0.0 for v, m in zip(standings, mask, strict=True)],
    )


def _check_inputs(
    group_size: int, pairs: Sequence[tuple[int, int]], winners: Sequence[str], preset: str,
    on_bad_verdict: str, pairing: str,
) -> None:
    if len(pairs) != len(winners):
        raise ValueError(f"{len(pairs)} pairs but {len(winners)} winners: one winner per pair is needed")
    for i, j in pairs:
        if not (0 <= i < group_size and 0 <= j < group_size) or i == j:
            raise ValueError(f"pair ({i}, {j}) is not a pair of distinct indices below {group_size}")
    if preset not in PRESETS:
        raise ValueError(f"unknown reward preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if on_bad_verdict not in ON_BAD_VERDICT:
        raise ValueError(f"on_bad_verdict must be 'mask_group' or 'drop_pair', not {on_bad_verdict!r}")
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")


def _win_rates(group_size: int, games: Sequence[tuple[int, int]]) -> tuple[list[float], list[int]]:
    """Each sample's share of won games (0.0 without any) and its number of games."""
    wins, played = [0] * group_size, [0] * group_size
    for winner, loser in games:
        wins[winner] += 1
        played[winner] += 1
        played[loser] += 1
    return [wins[k] / played[k] if played[k] else 0.0 for k in range(group_size)], played


def decisive_games(pairs: Sequence[tuple[int, int]], winners: Sequence[object]) -> list[tuple[int, int]]:
    """``(winner, loser)`` of every pair with a preference (``"A"``: ``i`` won, ``"B"``: ``j``);
    ties, invalid and unknown winners are left out."""
    return [(i, j) if w == "A" else (j, i) for (i, j), w in zip(pairs, winners, strict=True) if w in _DECISIVE]


def preset_rewards(
    standings: Sequence[float], mask: Sequence[bool], *, preset: RewardPreset, win: float, lose: float,
    scale: float, eps: float,
) -> tuple[list[float], list[float]]:
    """Rewards and advantages of a preset from standings in ``[0, 1]`` (1 best); the z-score is over
    the samples ``mask`` keeps. Masked samples' values are meaningless (the caller zeroes them)."""
    if preset == "official":
        rewards = [-lose + (win + lose) * w for w in standings]
        return rewards, list(rewards)
    if preset == "symmetric":
        rewards = [scale * (2.0 * w - 1.0) for w in standings]
        return rewards, list(rewards)
    kept = [w for w, m in zip(standings, mask, strict=True) if m]
    mean = sum(kept) / len(kept)
    std = (sum((w - mean) ** 2 for w in kept) / len(kept)) ** 0.5
    return list(standings), [(w - mean) / (std + eps) for w in standings]
