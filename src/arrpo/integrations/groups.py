"""Score a trainer's samples through the reward service, one blocking call at a time.

:class:`GroupScorer` is the adapters' shared scorer (and the one to use from any other loop):

* ``group`` mode (default): samples are grouped by prompt, and for edits by prompt and source
  image (or in fixed contiguous chunks with ``group_size``), made whole across ranks under
  ``torch.distributed``, each group judged once by one rank (under the ``pairing`` option, or the service's)
  (:mod:`arrpo.integrations.assembly`), every rank getting its own samples' values.
* ``pointwise`` mode: each sample is judged (``/v1/compare``) against its prompt's *anchor* image,
  e.g. the reference model's sample, and the verdict mapped by the same preset as a group of two.

Nothing fails silently. A group that cannot be judged (one sample, a fragment, over the
service's image limit without ``split_large_groups``, a missing anchor) raises
:class:`RewardGroupError` before any request; a request that fails (service down, 4xx, 503
after the retry budget) raises :class:`~arrpo.client.RewardServiceError`; every rank raises the
same. ``on_failure="mask"`` instead masks such samples (logged, counted in ``info`` and
``stats``). Masked samples reach the host by the masked-value rule
(:mod:`arrpo.masking`), and a run of steps with no signal fails
(:mod:`arrpo.step_monitor`). The service's limits and capacity come from its ``/health``
(:mod:`arrpo.integrations.service`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal

from arrpo._sync import run_sync
from arrpo.client import RewardServiceError, validate_options
from arrpo.convert import image_bytes, split_images
from arrpo.integrations.assembly import BatchScores, GroupAssembler, RewardGroupError, too_large
from arrpo.integrations.exchange import Exchange, default_exchange
from arrpo.integrations.judging import REWARD_OPTIONS, GroupJudge, pair_units
from arrpo.integrations.service import ServiceFacts, plan_judging, process_gate
from arrpo.masking import batch_std_notice, batch_std_refusal, check_host_std
from arrpo.step_monitor import MONITOR_DEFAULTS, StepMonitor
from arrpo.vocab import HostStd

__all__ = ["SCORER_OPTIONS", "BatchScores", "GroupScorer", "RewardGroupError", "too_large"]

log = logging.getLogger("arrpo.integrations")

ScoreField = Literal["reward", "advantage"]
FailurePolicy = Literal["raise", "mask"]
Mode = Literal["group", "pointwise"]

#: The default retry budget of the adapters: 25 retries, waits doubling from 0.5 s up to 30 s:
#: 601.5 s (about 10 minutes) of waiting for a service that is down or restarting
#: (:func:`arrpo.client.retry_waits`).
DEFAULT_RETRIES = {"max_retries": 25, "backoff": 0.5, "max_wait": 30.0}

#: The scorer's own options (everything else is a request option checked against the protocol).
SCORER_OPTIONS = (
    "token", "mode", "score", "group_size", "samples_per_prompt", "on_failure", "max_group_images",
    "split_large_groups", "timeout", "max_retries", "backoff", "max_wait", "distributed", "exchange",
    "exchange_timeout", "idle_timeout", "group_timeout", "host_std", *MONITOR_DEFAULTS,
)


def check_positive(name: str, value: Any, minimum: int = 1) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
        raise ValueError(f"{name} must be a whole number of at least {minimum}, not {value!r}")


class GroupScorer:
    """Judge a trainer's samples through the reward service.

    Args:
        url: service base URL; token: bearer token (default ``$ARRPO_SERVE_TOKEN``).
        mode: ``group`` (all pairs within each prompt's group) or ``pointwise`` (each sample
            against its anchor image).
        score: which value is returned as the score, ``reward`` or ``advantage``.
        group_size: fixed contiguous chunks instead of grouping by prompt (single process only).
        samples_per_prompt: the trainer's k; a group is complete at k samples, whatever calls
            and ranks they come from; a group left short is a fragment and refused.
        on_failure: ``raise`` (default) or ``mask`` (masked, logged and counted).
        max_group_images: most images per group request; the service's ``--max-images`` (from
            ``/health``) is the upper bound. Larger groups are refused before any request, or split
            into near-equal sub-groups with ``split_large_groups=True``.
        max_retries, backoff, max_wait, timeout: the retry budget for 503s and connection errors,
            ``/health`` included (default :data:`DEFAULT_RETRIES`: about 10 minutes).
        max_invalid_share, max_dead_steps, step_samples: the dead-step monitor
            (:class:`~arrpo.step_monitor.StepMonitor`).
        idle_timeout, group_timeout: how long an open group waits for its other samples.
        distributed: ``None`` (auto), ``True`` or ``False``; or pass ``exchange``.
        window_steps: a monitor step is a window of calls ending with no group open (Flow-GRPO's
            epoch) instead of every ``step_samples`` samples.
        ranks: processes judging their own groups against the same service without exchanging
            (Flow-Factory, DanceGRPO on several GPUs), so each keeps to its share of the capacity.
        host_std: the std the host divides advantages by: ``group`` (each group's own: a masked
            group's 0.0 is exact) or ``batch`` (one std of the whole batch: masked samples get the
            std-preserving fill where the scope is known — Flow-GRPO's lazy values — and fail the
            step elsewhere; :mod:`arrpo.masking`). host: the host's name, for that message.
        request: further request options (``preset``, ``order``, ``rubric``, ``win``, ``task``, ...),
            checked against the protocol here, before any request.
    """

    def __init__(
        self, url: str, *, token: str | None = None, mode: Mode = "group", score: ScoreField = "reward",
        group_size: int | None = None, samples_per_prompt: int | None = None,
        on_failure: FailurePolicy = "raise", max_group_images: int | None = None,
        split_large_groups: bool = False, timeout: float = 600.0,
        max_retries: int = DEFAULT_RETRIES["max_retries"], backoff: float = DEFAULT_RETRIES["backoff"],
        max_wait: float = DEFAULT_RETRIES["max_wait"], distributed: bool | None = None,
        exchange: Exchange | None = None, exchange_timeout: float = 600.0, idle_timeout: float = 10.0,
        group_timeout: float = 3600.0, max_invalid_share: float = 0.5, max_dead_steps: int = 3,
        step_samples: int = 64, window_steps: bool = False, ranks: int | None = None, host_std: HostStd = "group",
        host: str = "trainer", **request: Any,
    ):
        if not url:
            raise ValueError("no reward service URL given")
        if mode not in ("group", "pointwise"):
            raise ValueError(f"mode must be 'group' or 'pointwise', not {mode!r}")
        if score not in ("reward", "advantage"):
            raise ValueError(f"score must be 'reward' or 'advantage', not {score!r}")
        check_host_std(host_std)
        if on_failure not in ("raise", "mask"):
            raise ValueError(f"on_failure must be 'raise' or 'mask', not {on_failure!r}")
        for name, value in (("group_size", group_size), ("samples_per_prompt", samples_per_prompt)):
            check_positive(name, value)
        check_positive("max_group_images", max_group_images, 2)
        if (mode == "group" and group_size is not None and max_group_images is not None
                and group_size > max_group_images and not split_large_groups):
            raise RewardGroupError(too_large(group_size, max_group_images))
        try:
            if mode == "pointwise":
                validate_options("compare", {k: v for k, v in request.items() if k not in REWARD_OPTIONS})
                validate_options("group_rewards", {k: v for k, v in request.items() if k in REWARD_OPTIONS})
            else:
                validate_options("group_rewards", request, group_size=group_size or samples_per_prompt)
        except ValueError as exc:
            raise ValueError(f"{exc}; adapter options: {', '.join(SCORER_OPTIONS)}") from None
        self.url = url
        self.mode = mode
        self.score = score
        self.on_failure = on_failure
        self.request = request
        self.host_std = host_std
        self.host = host
        if host_std == "batch" and (mode == "pointwise" or not window_steps):
            log.warning(batch_std_notice(host))
        self.client_settings = {
            "token": token, "timeout": timeout, "max_retries": max_retries, "max_wait": max_wait, "backoff": backoff,
        }
        self.facts = ServiceFacts(url, self.client_settings, max_group_images)
        self.judge = GroupJudge(self.facts, request, split_large_groups)
        self.exchange = exchange if exchange is not None else default_exchange(distributed, exchange_timeout)
        if group_size is not None and self.exchange.world_size > 1:
            raise ValueError("group_size (fixed local chunks) cannot be used across ranks; use samples_per_prompt")
        self.monitor = StepMonitor(max_invalid_share, max_dead_steps, step_samples,
                                   speak=self.exchange.rank == 0 or not window_steps)
        self.assembler = GroupAssembler(
            self.judge, self.exchange, self.monitor, samples_per_prompt=samples_per_prompt, group_size=group_size,
            on_failure=on_failure, window_steps=window_steps, ordered=self.exchange.world_size > 1,
            idle_timeout=idle_timeout, group_timeout=group_timeout, independent_ranks=ranks or 1,
            host_std=host_std if window_steps else "group",  # the scope is known only from windows of calls
        )
        self.ranks = ranks or self.exchange.world_size
        self.samples_per_prompt = samples_per_prompt

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counts: groups judged, masked, failed and unjudgeable; samples, masked samples."""
        return dict(self.assembler.stats)

    def group_image_limit(self) -> int:
        """Most images one group request may hold (the service's ``--max-images``, from ``/health``,
        capped by ``max_group_images``); raises if the service stays unreachable."""
        return run_sync(self.facts.image_limit())

    # ------------------------------------------------------------------ public
    def score_batch(self, images: Any, prompts: Sequence[str], sources: Sequence[Any] | None = None,
                    anchors: Sequence[Any] | None = None) -> BatchScores:
        """Scores for this rank's samples (blocking; call it on every rank, in the same order).

        ``sources``: one source image per sample for edits. ``anchors``: one anchor image per
        sample (pointwise mode).
        """
        if self.mode == "pointwise":
            out = self.pointwise(images, prompts, sources, anchors)
        else:
            pending = self.assembler.submit(images, list(prompts), _optional(sources, "source images"))
            out = pending.result(idle_timeout=0.0)  # this call's groups are complete, or fragments
        return self.finish(out)

    def finish(self, out: BatchScores) -> BatchScores:
        """Pick the score field, count, and log what was masked by failures."""
        self.check_masked(out)
        out.scores = list(out.rewards if self.score == "reward" else out.advantages)
        stats = self.assembler.stats
        stats["calls"] += 1
        stats["samples"] += len(out.mask)
        stats["masked_samples"] += out.masked_samples
        if out.failed_groups or out.unscorable_groups:
            log.warning(
                "arrpo reward: %d of %d sample(s) masked this call (%d failed request(s), %d unjudgeable "
                "group(s)); first: %s. Totals so far: %s", out.masked_samples, len(out.mask), out.failed_groups,
                out.unscorable_groups, out.errors[0] if out.errors else "-", dict(stats),
            )
        return out

    def check_masked(self, out: BatchScores) -> None:
        """Fail the step when masked samples have no exact value under the host's advantage code."""
        if not out.masked_samples:
            return
        if self.mode == "pointwise":
            raise RewardGroupError(
                f"pointwise mode: {out.masked_samples} of {len(out.mask)} sample(s) masked; each sample was judged "
                "alone, but the host normalises a prompt's samples together, so no value gives a masked one zero "
                "advantage without moving the others: use mode='group' (a masked group is then masked whole), or "
                "fix the cause of the masking")
        if self.host_std == "batch" and not out.filled:
            raise RewardGroupError(batch_std_refusal(
                self.host, out.masked_samples, "this reward call does not see every reward of the host's batch"))

    # ---------------------------------------------------------- pointwise mode
    def pointwise(self, images: Any, prompts: Sequence[str], sources: Sequence[Any] | None,
                  anchors: Sequence[Any] | None) -> BatchScores:
        """Each sample against its anchor (``/v1/compare``), mapped by the preset as a pair."""
        items = [image_bytes(im) for im in split_images(images)]
        n = len(items)
        if len(prompts) != n:
            raise ValueError(f"{n} images but {len(prompts)} prompts")
        anchor_list = _optional(anchors, "anchor images", n) or [None] * n
        source_list = _optional(sources, "source images", n) or [None] * n
        missing = [k for k in range(n) if anchor_list[k] is None]
        if missing and self.on_failure == "raise":
            raise RewardGroupError(
                f"pointwise mode: {len(missing)} of {n} sample(s) have no anchor image (first: prompt "
                f"{str(prompts[missing[0]])[:80]!r}); give each prompt an anchor, e.g. the reference model's sample"
            )
        todo = [k for k in range(n) if anchor_list[k] is not None]
        verdicts = run_sync(self.compare_all(
            [(str(prompts[k]), items[k], image_bytes(anchor_list[k]),
              image_bytes(source_list[k]) if source_list[k] is not None else None) for k in todo]))
        out = BatchScores([0.0] * n, [0.0] * n, [0.0] * n, [False] * n, [[k] for k in range(n)])
        for k in missing:
            out.unscorable_groups += 1
            out.unjudged.append(k)
            out.errors.append(f"sample {k}: no anchor image")
        causes: dict[str, int] = {"no anchor image": len(missing)} if missing else {}
        failures = []
        for k, verdict in zip(todo, verdicts, strict=True):
            if isinstance(verdict, RewardServiceError):
                out.failed_groups += 1
                out.errors.append(f"sample {k}: {verdict}")
                failures.append(verdict)
                causes[f"service answered {verdict.status} ({verdict.code})"] = causes.get(
                    f"service answered {verdict.status} ({verdict.code})", 0) + 1
                continue
            outcome = self.judge.pair_outcome(verdict.winner)
            out.verdicts[verdict.winner] = out.verdicts.get(verdict.winner, 0) + 1
            out.rewards[k], out.advantages[k], out.mask[k] = outcome.rewards[0], outcome.advantages[0], outcome.mask[0]
            out.masked_groups += int(not outcome.mask[0])
            for cause, count in outcome.causes.items():
                causes[cause] = causes.get(cause, 0) + count
        out.masked_samples = sum(not m for m in out.mask)
        self.monitor.observe(n, out.masked_samples, causes)
        if failures and self.on_failure == "raise":
            first = failures[0]
            raise RewardServiceError(first.status, first.code, f"{first.message} [{len(failures)} of {n} comparison(s) failed]")
        return out

    async def compare_all(self, jobs: list[tuple[str, bytes, bytes, bytes | None]]) -> list[Any]:
        capacity = await self.facts.capacity()
        plan = plan_judging(capacity, pair_units(2, self.request.get("order")), self.ranks, coordinated=False)
        gate = process_gate(self.url, plan.share)
        return list(await asyncio.gather(*(self.judge.compare(p, im, a, s, gate) for p, im, a, s in jobs)))


def _optional(values: Any, what: str, n: int | None = None) -> list[Any] | None:
    if values is None:
        return None
    items = split_images(values) if not isinstance(values, (list, tuple)) else list(values)
    if n is not None and len(items) != n:
        raise ValueError(f"{n} images but {len(items)} {what}")
    return items
