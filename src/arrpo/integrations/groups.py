"""Score a trainer's samples through the reward service (shared by every trainer adapter).

Two modes:

* ``group`` (default): samples are grouped by prompt, and for edits by prompt and source image
  (or in fixed contiguous chunks with ``group_size``). Under ``torch.distributed`` the groups are
  first made whole by an all-gather (:mod:`arrpo.integrations.exchange`); each group is then
  judged all-pairs by ``/v1/group_rewards`` exactly once, by one owner rank, and the results are
  shared back, so every rank gets the rewards of judging each prompt's whole group at once.
* ``pointwise``: each sample is judged (``/v1/compare``) against its prompt's *anchor* image, e.g.
  the reference model's sample, and the verdict is mapped by the same preset as a group of two.
  No grouping is needed.

Nothing fails silently. A group that cannot be judged (one sample, a fragment smaller than
``samples_per_prompt``, over the service's image limit without ``split_large_groups``, a missing
anchor) raises :class:`RewardGroupError` before any request is sent; a request that fails
(service down, 4xx, 503 after the retry budget) raises :class:`~arrpo.client.RewardServiceError`.
Every rank raises the same error. ``on_failure="mask"`` instead scores such samples ``0.0`` with
mask false, logs a warning and counts them (per call in ``info`` and cumulatively in ``stats``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from arrpo._sync import run_sync
from arrpo.client import RewardServiceError, shared_async_client, validate_options
from arrpo.convert import image_bytes, split_images
from arrpo.errors import ArrpoError
from arrpo.integrations.exchange import Exchange, default_exchange
from arrpo.rewards import group_rewards
from arrpo.server.protocol import DEFAULT_LIMITS, Health

log = logging.getLogger("arrpo.integrations")

ScoreField = Literal["reward", "advantage"]
FailurePolicy = Literal["raise", "mask"]
Mode = Literal["group", "pointwise"]

#: The service's default ``--max-images``, assumed for a service too old to report its limits.
SERVICE_MAX_IMAGES = DEFAULT_LIMITS.max_images
#: Reward options that pointwise mode applies on the client (``/v1/compare`` has no rewards).
_REWARD_OPTIONS = ("preset", "win", "lose", "scale", "on_bad_verdict")


#: The scorer's own options (everything else is a request option checked against the protocol).
SCORER_OPTIONS = (
    "token", "mode", "score", "group_size", "samples_per_prompt", "on_failure", "max_group_images",
    "split_large_groups", "max_parallel_groups", "timeout", "max_retries", "backoff", "max_wait",
    "distributed", "exchange", "exchange_timeout",
)


class RewardGroupError(ArrpoError, ValueError, kind="bad_input"):
    """Samples that cannot be judged as asked: a single-sample or fragmented group, a group over
    the service's image limit, a sample without an anchor."""


def plan_groups(
    prompts: Sequence[str], group_size: int | None = None, sources: Sequence[str | None] | None = None
) -> list[list[int]]:
    """Indices per group: by identical prompt (and identical ``sources`` key, e.g. the source
    image's hash for edits) in first-appearance order, or fixed chunks (which must not mix them)."""
    keys = list(zip(prompts, sources, strict=True)) if sources is not None else [(p, None) for p in prompts]
    if group_size is not None:
        if group_size < 1:
            raise ValueError("group_size must be positive")
        if len(prompts) % group_size:
            raise ValueError(f"batch of {len(prompts)} is not a multiple of group_size {group_size}")
        chunks = [list(range(k, k + group_size)) for k in range(0, len(prompts), group_size)]
        for members in chunks:
            if len({keys[k] for k in members}) > 1:
                raise ValueError(
                    f"group_size {group_size}: samples {members} do not share one prompt and source image; "
                    "order the batch by group or leave group_size unset to group by prompt and source"
                )
        return chunks
    groups: dict[tuple[str, str | None], list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return list(groups.values())


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


@dataclass
class BatchScores:
    """Per-sample values in this rank's batch order, with what stands behind them."""

    scores: list[float]
    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    groups: list[list[int]]
    masked_samples: int = 0
    masked_groups: int = 0
    failed_groups: int = 0
    unscorable_groups: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unjudged: list[int] = field(default_factory=list)  # samples no verdict could be asked for

    def info(self) -> dict[str, Any]:
        return {
            "rewards": self.rewards, "advantages": self.advantages, "mask": self.mask,
            "groups": self.groups, "masked_samples": self.masked_samples, "unjudged": self.unjudged,
            "masked_groups": self.masked_groups, "failed_groups": self.failed_groups,
            "unscorable_groups": self.unscorable_groups, "verdicts": self.verdicts, "errors": self.errors,
        }


@dataclass
class _Outcome:
    """One group's result as shared between ranks (plain data, picklable)."""

    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    verdicts: dict[str, int]
    error: tuple[int, str, str] | None = None  # (status, code, message) of a failed request
    unscorable: str | None = None  # why the group could not be judged at all


class GroupScorer:
    """Judge a trainer's samples through the reward service.

    Args:
        url: service base URL; token: bearer token (default ``$ARRPO_SERVE_TOKEN``).
        mode: ``group`` (all pairs within each prompt's group) or ``pointwise`` (each sample
            against its anchor image).
        score: which value is returned as the score, ``reward`` or ``advantage``.
        group_size: fixed contiguous chunks instead of grouping by prompt (single process only).
        samples_per_prompt: the k of the trainer; a gathered group whose size is not a multiple
            of it is a fragment and is refused.
        on_failure: ``raise`` (default) or ``mask`` (0.0, mask false, logged and counted).
        max_group_images: most images per group request. Default: the limit the service reports in
            ``/health`` (its ``--max-images``; 16 for a service too old to report it); a value given
            here is capped by the service's. Larger groups are refused before any request, or split
            into near-equal sub-groups judged separately with ``split_large_groups=True``.
        max_parallel_groups: requests in flight from this rank; default: what fits the
            service's admission capacity (from ``/health``) shared by all ranks.
        max_retries, backoff, max_wait, timeout: retry budget for 503s and connection errors
            (default: 20 retries, waits doubling from 0.5 s up to 30 s, about 10 minutes in all,
            so a briefly saturated or restarting service does not stop a training run).
        distributed: ``None`` (auto), ``True`` or ``False``; or pass ``exchange``.
        request: further request options (``preset``, ``order``, ``rubric``, ``win``, ...), checked
            against the protocol here, before any request.
    """

    def __init__(
        self, url: str, *, token: str | None = None, mode: Mode = "group", score: ScoreField = "reward",
        group_size: int | None = None, samples_per_prompt: int | None = None,
        on_failure: FailurePolicy = "raise", max_group_images: int | None = None,
        split_large_groups: bool = False, max_parallel_groups: int | None = None, timeout: float = 600.0,
        max_retries: int = 20, backoff: float = 0.5, max_wait: float = 30.0,
        distributed: bool | None = None, exchange: Exchange | None = None, exchange_timeout: float = 600.0,
        **request: Any,
    ):
        if not url:
            raise ValueError("no reward service URL given")
        if mode not in ("group", "pointwise"):
            raise ValueError(f"mode must be 'group' or 'pointwise', not {mode!r}")
        if score not in ("reward", "advantage"):
            raise ValueError(f"score must be 'reward' or 'advantage', not {score!r}")
        if on_failure not in ("raise", "mask"):
            raise ValueError(f"on_failure must be 'raise' or 'mask', not {on_failure!r}")
        for name, value in (("group_size", group_size), ("samples_per_prompt", samples_per_prompt),
                            ("max_parallel_groups", max_parallel_groups)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if max_group_images is not None and (not isinstance(max_group_images, int) or max_group_images < 2):
            raise ValueError(f"max_group_images must be a whole number of at least 2, not {max_group_images!r}")
        if (mode == "group" and group_size is not None and max_group_images is not None
                and group_size > max_group_images and not split_large_groups):
            raise RewardGroupError(too_large(group_size, max_group_images))
        try:
            if mode == "pointwise":
                validate_options("compare", {k: v for k, v in request.items() if k not in _REWARD_OPTIONS})
                validate_options("group_rewards", {k: v for k, v in request.items() if k in _REWARD_OPTIONS})
            else:
                validate_options("group_rewards", request)
        except ValueError as exc:
            raise ValueError(f"{exc}; adapter options: {', '.join(SCORER_OPTIONS)}") from None
        self.url = url
        self.token = token
        self.mode = mode
        self.score = score
        self.group_size = group_size
        self.samples_per_prompt = samples_per_prompt
        self.on_failure = on_failure
        self.max_group_images = max_group_images
        self.split_large_groups = split_large_groups
        self.max_parallel_groups = max_parallel_groups
        self.client_settings = {
            "token": token, "timeout": timeout, "max_retries": max_retries, "max_wait": max_wait, "backoff": backoff,
        }
        self.request = request
        self.exchange = exchange if exchange is not None else default_exchange(distributed, exchange_timeout)
        if group_size is not None and self.exchange.world_size > 1:
            raise ValueError("group_size (fixed local chunks) cannot be used across ranks; use samples_per_prompt")
        self.stats: Counter[str] = Counter()
        self._health: Health | None = None

    def group_image_limit(self) -> int:
        """Most images one group request may hold: the service's limit from ``/health`` (16 for a
        service too old to report it, or one that cannot be asked now), capped by ``max_group_images``."""
        return run_sync(self._group_image_limit())

    # ------------------------------------------------------------------ public
    def score_batch(
        self, images: Any, prompts: Sequence[str], sources: Sequence[Any] | None = None,
        anchors: Sequence[Any] | None = None, *, unscorable_value: float | None = None,
    ) -> BatchScores:
        """Scores for this rank's samples (blocking; call it on every rank, in the same order).

        ``sources``: one source image per sample for edits. ``anchors``: one anchor image per
        sample (pointwise mode). ``unscorable_value``: for evaluation calls, the value given to
        samples that cannot be judged (e.g. Flow-GRPO's ``-10`` "no value" marker) instead of
        failing; they are still logged and counted.
        """
        ticket = self.exchange.ticket()  # first thing: the place in line among concurrent calls
        with self.exchange.turn(ticket):
            return self._score_batch(images, prompts, sources, anchors, unscorable_value)

    def _score_batch(
        self, images: Any, prompts: Sequence[str], sources: Sequence[Any] | None, anchors: Sequence[Any] | None,
        unscorable_value: float | None,
    ) -> BatchScores:
        items = split_images(images)
        prompts = [str(p) for p in prompts]
        if len(items) != len(prompts):
            raise ValueError(f"{len(items)} images but {len(prompts)} prompts")
        source_list = _optional_list(sources, len(items), "source images")
        anchor_list = _optional_list(anchors, len(items), "anchor images")
        encoded = [image_bytes(im) for im in items]
        source_bytes = [image_bytes(s) if s is not None else None for s in source_list] if source_list else None
        if self.mode == "pointwise":
            anchor_bytes = [image_bytes(a) if a is not None else None for a in anchor_list] if anchor_list else None
            out = self._pointwise(prompts, encoded, source_bytes, anchor_bytes, unscorable_value)
        else:
            out = self._grouped(prompts, encoded, source_bytes, unscorable_value)
        values = out.rewards if self.score == "reward" else out.advantages
        out.scores = list(values)
        if unscorable_value is not None:
            for k in out.unjudged:
                out.scores[k] = unscorable_value
        self._account(out)
        return out

    # ------------------------------------------------------------- group mode
    def _grouped(
        self, prompts: list[str], encoded: list[bytes], sources: list[bytes | None] | None,
        unscorable_value: float | None,
    ) -> BatchScores:
        keys = [hashlib.sha256(s).hexdigest() if s is not None else None for s in sources] if sources else None
        payload = {
            "samples": [(p, keys[k] if keys else None, encoded[k]) for k, p in enumerate(prompts)],
            "sources": {keys[k]: sources[k] for k in range(len(prompts))} if sources and keys else {},
            "limit": self.group_image_limit(),
        }
        exchange = self.exchange
        # the caller holds this call's turn (see score_batch): exchanges pair up across ranks
        gathered = exchange.all_gather(payload)
        limit = min(part["limit"] for part in gathered)  # every rank plans with the same limit
        samples: list[tuple[str, str | None, bytes]] = []
        owner_of_sample: list[tuple[int, int]] = []
        all_sources: dict[str, bytes] = {}
        for rank, part in enumerate(gathered):
            for local, sample in enumerate(part["samples"]):
                samples.append(sample)
                owner_of_sample.append((rank, local))
            all_sources.update(part["sources"])
        global_prompts = [s[0] for s in samples]
        global_keys = [s[1] for s in samples] if any(s[1] is not None for s in samples) else None
        groups = plan_groups(global_prompts, self.group_size, global_keys)
        problems = {g: why for g, members in enumerate(groups) if (why := self._unscorable(members, samples, limit))}
        if exchange.world_size > 1 and not self.samples_per_prompt:
            sizes = sorted({len(m) for m in groups})
            if len(sizes) > 1:  # the trainer's k is the same for every prompt: these are fragments
                problems.update({
                    g: f"groups gathered from {exchange.world_size} ranks have unequal sizes {sizes}: some "
                    "are fragments (their other samples are in another reward call); set "
                    "samples_per_prompt to the trainer's k" for g, m in enumerate(groups) if len(m) < sizes[-1]
                })
        if problems and self.on_failure == "raise" and unscorable_value is None:
            first = next(iter(problems.values()))
            raise RewardGroupError(f"{len(problems)} of {len(groups)} group(s) cannot be judged; first: {first}")
        mine = [g for g in range(len(groups)) if g % exchange.world_size == exchange.rank and g not in problems]
        outcomes = run_sync(self._judge_groups(
            {g: groups[g] for g in mine}, samples, all_sources, limit,
        ))
        for g, why in problems.items():
            if g % exchange.world_size == exchange.rank:
                n = len(groups[g])
                outcomes[g] = _Outcome([0.0] * n, [0.0] * n, [False] * n, {}, unscorable=why)
        shared: dict[int, _Outcome] = {}
        for part in exchange.all_gather(outcomes):
            shared.update(part)
        failed = {g: o for g, o in shared.items() if o.error is not None}
        if failed and self.on_failure == "raise":
            g, outcome = min(failed.items())
            status, code, message = outcome.error  # type: ignore[misc]
            raise RewardServiceError(
                status, code,
                f"{message} [{len(failed)} of {len(groups)} group(s) failed; first: prompt "
                f"{samples[groups[g][0]][0][:80]!r}, {len(groups[g])} images]",
            )
        n = len(prompts)
        out = BatchScores([0.0] * n, [0.0] * n, [0.0] * n, [False] * n, [])
        for g, members in enumerate(groups):
            outcome = shared[g]
            local = [owner_of_sample[i][1] for i in members if owner_of_sample[i][0] == exchange.rank]
            if local:
                out.groups.append(local)
            for pos, i in enumerate(members):
                rank, k = owner_of_sample[i]
                if rank != exchange.rank:
                    continue
                out.rewards[k] = outcome.rewards[pos]
                out.advantages[k] = outcome.advantages[pos]
                out.mask[k] = outcome.mask[pos]
            if not local:
                continue
            if outcome.unscorable:
                out.unscorable_groups += 1
                out.errors.append(f"group {local}: {outcome.unscorable}")
                out.unjudged += local
            elif outcome.error:
                out.failed_groups += 1
                status, code, message = outcome.error
                out.errors.append(f"group {local}: service answered {status} ({code}): {message}")
            elif not any(outcome.mask):
                out.masked_groups += 1
            for winner, count in outcome.verdicts.items():
                out.verdicts[winner] = out.verdicts.get(winner, 0) + count
        return out

    def _unscorable(
        self, members: list[int], samples: list[tuple[str, str | None, bytes]], limit: int,
    ) -> str | None:
        prompt = samples[members[0]][0][:80]
        n = len(members)
        if self.samples_per_prompt and n % self.samples_per_prompt:
            return (
                f"prompt {prompt!r} has {n} samples, not a multiple of samples_per_prompt="
                f"{self.samples_per_prompt}: the group is fragmented (its other samples are in another "
                "reward call, e.g. another sampling batch)"
            )
        if n < 2:
            return (
                f"prompt {prompt!r} has a single sample; a pairwise judge needs its whole group "
                "(check that every rank calls the reward with all of its samples, or use mode='pointwise')"
            )
        if n > limit and not self.split_large_groups:
            return too_large(n, limit) + f" (prompt {prompt!r})"
        return None

    async def _judge_groups(
        self, groups: dict[int, list[int]], samples: list[tuple[str, str | None, bytes]],
        sources: dict[str, bytes], limit: int,
    ) -> dict[int, _Outcome]:
        client = shared_async_client(self.url, **self.client_settings)
        parts = {g: (split_evenly(m, limit) if len(m) > limit else [m])
                 for g, m in groups.items()}
        largest = max((len(p) for chunks in parts.values() for p in chunks), default=2)
        gate = asyncio.Semaphore(await self._parallelism(client, largest))

        async def one(members: list[int]) -> _Outcome:
            prompt, key, _ = samples[members[0]]
            async with gate:
                try:
                    result = await client.group_rewards(
                        prompt, [samples[i][2] for i in members],
                        source=sources[key] if key is not None else None, **self.request,
                    )
                except RewardServiceError as exc:
                    return _failed(len(members), exc.status, exc.code, exc.message)
                except Exception as exc:  # reported to every rank, then raised or masked
                    return _failed(len(members), 0, type(exc).__name__, str(exc))
            verdicts = Counter(pair.verdict.winner for pair in result.pairs)
            return _Outcome(list(result.rewards), list(result.advantages), list(result.mask), dict(verdicts))

        async def group(g: int) -> tuple[int, _Outcome]:
            pieces = await asyncio.gather(*(one(chunk) for chunk in parts[g]))
            merged = _Outcome([], [], [], {})
            for piece in pieces:
                merged.rewards += piece.rewards
                merged.advantages += piece.advantages
                merged.mask += piece.mask
                for winner, count in piece.verdicts.items():
                    merged.verdicts[winner] = merged.verdicts.get(winner, 0) + count
                merged.error = merged.error or piece.error
            return g, merged

        return dict(await asyncio.gather(*(group(g) for g in groups)))

    async def _parallelism(self, client: Any, largest_group: int) -> int:
        """Requests in flight from this rank: explicit, or the share of the service's admission
        capacity (judge calls) that groups of this size can use without being refused."""
        if self.max_parallel_groups is not None:
            return self.max_parallel_groups
        health = await self._service_health(client)
        if health is None:
            return 1
        pairs = largest_group * (largest_group - 1) // 2
        units = pairs * (2 if self.request.get("order") == "both" else 1)
        share = health.capacity // max(1, self.exchange.world_size)
        return max(1, share // max(1, units))

    async def _service_health(self, client: Any) -> Health | None:
        """The service's ``/health`` (asked once per scorer), or None when it cannot be asked now."""
        if self._health is None:
            try:
                self._health = await client.health()
            except Exception as exc:  # the requests themselves will report it
                log.debug("arrpo: /health failed (%s); one group at a time, default limits", exc)
                return None
        return self._health

    async def _group_image_limit(self) -> int:
        health = await self._service_health(shared_async_client(self.url, **self.client_settings))
        if health is None:
            return self.max_group_images or SERVICE_MAX_IMAGES
        reported = (health.limits or DEFAULT_LIMITS).max_images
        if self.max_group_images is not None and self.max_group_images > reported:
            log.info("arrpo: max_group_images=%d is over the service's --max-images %d; using %d",
                     self.max_group_images, reported, reported)
        return min(self.max_group_images or reported, reported)

    # ---------------------------------------------------------- pointwise mode
    def _pointwise(
        self, prompts: list[str], encoded: list[bytes], sources: list[bytes | None] | None,
        anchors: list[bytes | None] | None, unscorable_value: float | None,
    ) -> BatchScores:
        n = len(prompts)
        missing = [k for k in range(n) if anchors is None or anchors[k] is None]
        if missing and self.on_failure == "raise" and unscorable_value is None:
            raise RewardGroupError(
                f"pointwise mode: {len(missing)} of {n} sample(s) have no anchor image (first: prompt "
                f"{prompts[missing[0]][:80]!r}); give each prompt an anchor, e.g. the reference model's sample"
            )
        reward_options = {k: v for k, v in self.request.items() if k in _REWARD_OPTIONS}
        compare_options = {k: v for k, v in self.request.items() if k not in _REWARD_OPTIONS}

        async def judge_all() -> list[Any]:
            client = shared_async_client(self.url, **self.client_settings)
            gate = asyncio.Semaphore(await self._parallelism(client, 2))

            async def one(k: int) -> Any:
                async with gate:
                    try:
                        return await client.compare(
                            prompts[k], encoded[k], anchors[k],  # type: ignore[index]
                            source=sources[k] if sources else None, **compare_options,
                        )
                    except RewardServiceError as exc:
                        return exc
                    except Exception as exc:
                        return RewardServiceError(0, type(exc).__name__, str(exc))

            todo = [k for k in range(n) if k not in missing]
            return dict(zip(todo, await asyncio.gather(*(one(k) for k in todo)), strict=True))

        results = run_sync(judge_all())
        failures = {k: r for k, r in results.items() if isinstance(r, RewardServiceError)}
        if failures and self.on_failure == "raise":
            k, first = min(failures.items())
            raise RewardServiceError(
                first.status, first.code, f"{first.message} [{len(failures)} of {n} comparison(s) failed]"
            )
        out = BatchScores([0.0] * n, [0.0] * n, [0.0] * n, [False] * n, [[k] for k in range(n)])
        for k in missing:
            out.unscorable_groups += 1
            out.unjudged.append(k)
            out.errors.append(f"sample {k}: no anchor image")
        for k, result in results.items():
            if isinstance(result, RewardServiceError):
                out.failed_groups += 1
                out.errors.append(f"sample {k}: {result}")
                continue
            winner = result.verdict.winner
            out.verdicts[winner] = out.verdicts.get(winner, 0) + 1
            pair = group_rewards(2, [(0, 1)], [winner], **reward_options)
            out.rewards[k], out.advantages[k], out.mask[k] = pair.rewards[0], pair.advantages[0], pair.mask[0]
            out.masked_groups += int(not pair.mask[0])
        return out

    # ------------------------------------------------------------- accounting
    def _account(self, out: BatchScores) -> None:
        out.masked_samples = sum(not m for m in out.mask)
        self.stats["calls"] += 1
        self.stats["samples"] += len(out.mask)
        self.stats["masked_samples"] += out.masked_samples
        self.stats["masked_groups"] += out.masked_groups
        self.stats["failed_groups"] += out.failed_groups
        self.stats["unscorable_groups"] += out.unscorable_groups
        if out.failed_groups or out.unscorable_groups:
            log.warning(
                "arrpo reward: %d of %d sample(s) scored 0.0 and masked this call (%d failed request(s), "
                "%d unjudgeable group(s)); first: %s. Totals so far: %s",
                out.masked_samples, len(out.mask), out.failed_groups, out.unscorable_groups,
                out.errors[0] if out.errors else "-", dict(self.stats),
            )
        elif out.masked_samples:
            log.info(
                "arrpo reward: %d of %d sample(s) masked by tie/invalid verdicts (%d group(s))",
                out.masked_samples, len(out.mask), out.masked_groups,
            )


def too_large(n: int, limit: int) -> str:
    return (
        f"a group of {n} images is over the service's limit of {limit} per request; lower the "
        "number of samples per prompt, raise --max-images on the service (and max_group_images "
        "here), or pass split_large_groups=True to judge near-equal sub-groups separately"
    )


def _failed(n: int, status: int, code: str, message: str) -> _Outcome:
    return _Outcome([0.0] * n, [0.0] * n, [False] * n, {}, error=(status, code, message))


def _optional_list(values: Any, n: int, what: str) -> list[Any] | None:
    if values is None:
        return None
    items = split_images(values) if not isinstance(values, (list, tuple)) else list(values)
    if len(items) != n:
        raise ValueError(f"{n} images but {len(items)} {what}")
    return items

