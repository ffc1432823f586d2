"""Judging whole groups (and anchor pairs) through the reward service, within its limits.

:class:`GroupJudge` sends each group to ``/v1/group_rewards`` — split into near-equal sub-groups
when it is over the service's image limit and the caller allows it — under the process's
:class:`~arrpo.integrations.service.UnitGate`, and returns one :class:`Outcome` per group with the
masked-value rule (:mod:`arrpo.masking`) already applied and the causes of every
masked sample counted. A failed request is an outcome with ``error`` set, never an exception, so
that every rank learns of it; :meth:`GroupJudge.compare` does the same for one sample against its
anchor (``/v1/compare``).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from arrpo.client import RewardServiceError
from arrpo.integrations.service import ServiceFacts, UnitGate
from arrpo.masking import host_values
from arrpo.rewards import group_rewards
from arrpo.step_monitor import cause_of, masked_causes
from arrpo.tournament import vlm_calls_per_group

#: Reward options applied on the client for anchor comparisons (``/v1/compare`` has no rewards).
REWARD_OPTIONS = ("preset", "win", "lose", "scale", "on_bad_verdict")


@dataclass
class GroupRequest:
    """One group to judge: its prompt, the candidates (encoded) and the source image (edits)."""

    prompt: str
    images: list[bytes]
    source: bytes | None = None


@dataclass
class Outcome:
    """One group's result as shared between ranks (plain data, picklable)."""

    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    verdicts: dict[str, int] = field(default_factory=dict)
    causes: dict[str, int] = field(default_factory=dict)  # why its samples are masked
    error: tuple[int, str, str] | None = None  # (status, code, message) of a failed request
    unscorable: str | None = None  # why the group could not be judged at all
    promoted: int = 0  # valid samples masked with their group (the masked-value rule)

    @classmethod
    def masked(cls, n: int, cause: str, *, error: tuple[int, str, str] | None = None,
               unscorable: str | None = None) -> Outcome:
        return cls([0.0] * n, [0.0] * n, [False] * n, {}, {cause_of(cause): n}, error, unscorable)


def pair_units(n: int, order: str | None, pairing: str = "all_pairs", rounds: int | None = None) -> int:
    """Judge calls a group of ``n`` costs the service under ``pairing`` (both orders count twice;
    a tournament its most: :func:`arrpo.tournament.vlm_calls_per_group`)."""
    if n < 2:
        return 2 if order == "both" else 1
    return vlm_calls_per_group(n, pairing, "both" if order == "both" else "random", rounds=rounds)  # type: ignore[arg-type]


def split_evenly(members: list[int], limit: int) -> list[list[int]]:
    """``members`` in the fewest near-equal consecutive chunks of at most ``limit``."""
    parts = math.ceil(len(members) / limit)
    size, extra = divmod(len(members), parts)
    chunks, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        chunks.append(members[start:end])
        start = end
    return chunks


class GroupJudge:
    """Judge groups for one adapter. ``request``: the ``/v1/group_rewards`` options."""

    def __init__(self, facts: ServiceFacts, request: dict[str, Any], split_large_groups: bool = False):
        self.facts = facts
        self.request = request
        self.split_large_groups = split_large_groups

    def units(self, n: int) -> int:
        """Judge calls one request of ``n`` images costs, under the request's pairing (or the
        service's default, from ``/health``)."""
        pairing = self.request.get("pairing") or self.facts.default_pairing()
        order = self.request.get("order") or self.facts.default_order()
        return pair_units(n, order, pairing, self.request.get("tournament_rounds"))

    async def judge(self, groups: dict[Any, GroupRequest], gate: UnitGate, limit: int) -> dict[Any, Outcome]:
        """Every group of ``groups`` (keys kept), its parts in flight under ``gate``."""
        client = self.facts.client()

        async def part(group: GroupRequest, members: list[int]) -> Outcome:
            units = self.units(len(members))
            await gate.acquire(units)
            try:
                result = await client.group_rewards(
                    group.prompt, [group.images[i] for i in members], source=group.source, **self.request,
                )
            except RewardServiceError as exc:
                self.facts.failed(exc)
                return Outcome.masked(len(members), f"service answered {exc.status} ({exc.code})",
                                      error=(exc.status, exc.code, exc.message))
            except Exception as exc:  # reported to every rank, then raised or masked
                return Outcome.masked(len(members), type(exc).__name__, error=(0, type(exc).__name__, str(exc)))
            finally:
                await gate.release(units)
            return Outcome(list(result.rewards), list(result.advantages), list(result.mask),
                           dict(Counter(pair.verdict.winner for pair in result.pairs)), dict(masked_causes(result)))

        async def whole(group: GroupRequest) -> Outcome:
            members = list(range(len(group.images)))
            pieces = split_evenly(members, limit) if len(members) > limit else [members]
            return merge(await asyncio.gather(*(part(group, piece) for piece in pieces)))

        keys = list(groups)
        outcomes = await asyncio.gather(*(whole(groups[k]) for k in keys))
        return dict(zip(keys, outcomes, strict=True))

    async def compare(self, prompt: str, image: bytes, anchor: bytes, source: bytes | None, gate: UnitGate,
                      ) -> Any:
        """One sample against its anchor: the verdict (image shown as A), or the error."""
        options = {k: v for k, v in self.request.items() if k not in REWARD_OPTIONS}
        units = pair_units(2, options.get("order"))
        await gate.acquire(units)
        try:
            return (await self.facts.client().compare(prompt, image, anchor, source=source, **options)).verdict
        except RewardServiceError as exc:
            self.facts.failed(exc)
            return exc
        except Exception as exc:
            return RewardServiceError(0, type(exc).__name__, str(exc))
        finally:
            await gate.release(units)

    def pair_outcome(self, winner: str) -> Outcome:
        """A pointwise verdict mapped by the preset as a group of two; the sample's value first."""
        options = {k: v for k, v in self.request.items() if k in REWARD_OPTIONS}
        pair = group_rewards(2, [(0, 1)], [winner], **options)
        cause = {} if pair.mask[0] else {cause_of("tie" if winner == "tie" else f"invalid verdict ({winner})"): 1}
        return Outcome(pair.rewards[:1], pair.advantages[:1], pair.mask[:1], {winner: 1}, cause)


def merge(pieces: list[Outcome]) -> Outcome:
    """Sub-group outcomes as one group, with the masked-value rule applied to the whole."""
    rewards, advantages, mask = [], [], []
    verdicts: Counter = Counter()
    error = unscorable = None
    for piece in pieces:
        rewards += piece.rewards
        advantages += piece.advantages
        mask += piece.mask
        verdicts.update(piece.verdicts)
        error = error or piece.error
        unscorable = unscorable or piece.unscorable
    values = host_values(rewards, advantages, mask)
    causes: Counter = Counter()
    for piece in pieces:
        causes.update(piece.causes)
    if values.promoted:
        causes[cause_of(f"a sample of the group is masked ({next(iter(causes), 'masked')})")] += values.promoted
    return Outcome(values.rewards, values.advantages, values.mask, dict(verdicts), dict(causes), error,
                   unscorable, values.promoted)
