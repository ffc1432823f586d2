"""Score a trainer's batch group by group through the reward service (shared by the adapters).

A batch holds several samples per prompt. Samples are grouped by prompt, and for edits by prompt
and source image (or by fixed-size contiguous chunks when ``group_size`` is given, which must not
mix prompts or sources), each group of two or more is sent to
``/v1/group_rewards`` (groups run concurrently), and the per-image values are put back in batch
order. A sample alone in its group cannot be compared: it scores ``0.0`` and is masked.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from arrpo._sync import run_sync
from arrpo.client import AsyncRewardClient, RewardServiceError
from arrpo.integrations.convert import image_bytes, split_images

ScoreField = Literal["reward", "advantage"]


def plan_groups(
    prompts: Sequence[str], group_size: int | None = None, sources: Sequence[str] | None = None
) -> list[list[int]]:
    """Batch indices per group: by identical prompt (and identical ``sources`` key, e.g. the source
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


@dataclass
class BatchScores:
    """Per-sample scores in batch order, with what stands behind them."""

    scores: list[float]
    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    groups: list[list[int]]
    masked_groups: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {
            "rewards": self.rewards, "advantages": self.advantages, "mask": self.mask,
            "groups": self.groups, "masked_groups": self.masked_groups, "verdicts": self.verdicts,
            "errors": self.errors,
        }


class GroupScorer:
    """Send a batch's groups to the service and collect per-sample scores.

    Args:
        url: service base URL; token: bearer token (default ``ARRPO_SERVE_TOKEN``).
        score: which value becomes the score, ``reward`` or ``advantage``.
        group_size: fixed group size; ``None`` groups by prompt.
        max_parallel_groups: groups in flight at once.
        raise_on_error: raise when a group fails (default: score it 0.0, mask it, record the error).
        request: further ``/v1/group_rewards`` options (``preset``, ``order``, ``rubric``, ...).
    """

    def __init__(
        self, url: str, *, token: str | None = None, score: ScoreField = "reward",
        group_size: int | None = None, max_parallel_groups: int = 8, timeout: float = 600.0,
        raise_on_error: bool = False, **request: Any,
    ):
        if score not in ("reward", "advantage"):
            raise ValueError("score must be 'reward' or 'advantage'")
        self.url = url
        self.token = token
        self.score = score
        self.group_size = group_size
        self.max_parallel_groups = max(1, max_parallel_groups)
        self.timeout = timeout
        self.raise_on_error = raise_on_error
        self.request = request

    async def score_batch_async(
        self, images: Any, prompts: Sequence[str], sources: Sequence[Any] | None = None
    ) -> BatchScores:
        items = split_images(images)
        if len(items) != len(prompts):
            raise ValueError(f"{len(items)} images but {len(prompts)} prompts")
        source_list = split_images(sources) if sources is not None else None
        if source_list is not None and len(source_list) != len(items):
            raise ValueError(f"{len(items)} images but {len(source_list)} source images")
        source_keys = [hashlib.sha256(image_bytes(s)).hexdigest() for s in source_list] if source_list else None
        groups = plan_groups(list(prompts), self.group_size, source_keys)
        n = len(items)
        out = BatchScores([0.0] * n, [0.0] * n, [0.0] * n, [False] * n, groups)
        gate = asyncio.Semaphore(self.max_parallel_groups)

        async with AsyncRewardClient(self.url, token=self.token, timeout=self.timeout) as client:

            async def one(members: list[int]) -> None:
                if len(members) < 2:
                    out.masked_groups += 1
                    return
                source = source_list[members[0]] if source_list is not None else None
                async with gate:
                    try:
                        result = await client.group_rewards(
                            prompts[members[0]], [items[k] for k in members], source=source, **self.request
                        )
                    except (RewardServiceError, httpx.HTTPError, OSError, ValueError) as exc:
                        if self.raise_on_error:
                            raise
                        out.errors.append(f"group {members}: {exc}")
                        out.masked_groups += 1
                        return
                for pos, k in enumerate(members):
                    out.rewards[k] = result.rewards[pos]
                    out.advantages[k] = result.advantages[pos]
                    out.mask[k] = result.mask[pos]
                out.masked_groups += int(result.masked)
                for pair in result.pairs:
                    winner = pair.verdict.winner
                    out.verdicts[winner] = out.verdicts.get(winner, 0) + 1

            await asyncio.gather(*(one(members) for members in groups))
        values = out.rewards if self.score == "reward" else out.advantages
        out.scores = list(values)
        return out

    def score_batch(self, images: Any, prompts: Sequence[str], sources: Sequence[Any] | None = None) -> BatchScores:
        """Blocking :meth:`score_batch_async` (trainer loops are synchronous)."""
        return run_sync(self.score_batch_async(images, prompts, sources))
