"""The arrpo reward in DanceGRPO's per-image decode loop.

DanceGRPO has no reward hook: each rank repeats every prompt ``num_generations`` times
contiguously, samples and decodes one image at a time, scores it inline, appends the 1-element
score to a list, concatenates the list into the step's rewards, and computes advantages per
contiguous chunk of ``num_generations`` (``use_group``). A pairwise judge cannot score one image
alone, so :class:`ChunkRewards` buffers the images of the current chunk and judges the chunk,
all-pairs, as soon as its last image arrives. :meth:`ChunkRewards.add` returns a 1-element tensor
that is filled in place when the chunk is judged, so it stands exactly where the inline score
stood::

    arrpo_rewards = ChunkRewards(args.num_generations)          # once, next to the reward model
    ...
    reward = arrpo_rewards.add(image, caption)                  # in the loop, instead of the HPS call
    all_rewards.append(reward)

``finish()`` (optional) checks that the last chunk is complete and returns the rewards; a chunk
that mixes prompts or source images, a group over the service's image limit, or a failed request
raises at once (or, with ``on_failure="mask"``, scores the chunk 0.0, logged and counted).
"""

from __future__ import annotations

import os
from typing import Any

from arrpo.integrations.exchange import LocalExchange
from arrpo.integrations.groups import GroupScorer, RewardGroupError, too_large

URL_ENV = "ARRPO_SERVICE_URL"


class ChunkRewards:
    """Collect the decode loop's images and judge each chunk of ``num_generations`` as one group.

    Args:
        num_generations: DanceGRPO's ``args.num_generations`` (the chunk size).
        url: service URL (default ``$ARRPO_SERVICE_URL``).
        split_large_groups: judge a chunk over the service's image limit (``/health``, or
            ``max_group_images``) as near-equal sub-groups instead of refusing it at construction.
        options: further :class:`~arrpo.integrations.groups.GroupScorer` options.
    """

    def __init__(self, num_generations: int, url: str | None = None, *, split_large_groups: bool = False,
                 **options: Any):
        if not isinstance(num_generations, int) or num_generations < 2:
            raise RewardGroupError(
                f"num_generations={num_generations!r}: a pairwise reward needs at least 2 images per prompt"
            )
        url = url or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"no reward service URL: set ${URL_ENV} (or pass url=...)")
        self.num_generations = num_generations
        # Each rank's chunks are its own (DanceGRPO repeats prompts per rank): no exchange.
        self.scorer = GroupScorer(
            url, group_size=num_generations, split_large_groups=split_large_groups, exchange=LocalExchange(),
            **options,
        )
        limit = self.scorer.group_image_limit()  # the service's --max-images, from /health
        if num_generations > limit and not split_large_groups:
            raise RewardGroupError(too_large(num_generations, limit) + f" (num_generations={num_generations})")
        self._images: list[Any] = []
        self._prompts: list[str] = []
        self._sources: list[Any] = []
        self._slots: list[Any] = []
        self.rewards: list[Any] = []

    def add(self, image: Any, prompt: str, source: Any = None) -> Any:
        """Buffer one decoded image (PIL, HWC array or CHW/1CHW tensor in [0, 1]) and return its
        reward slot: a 1-element float tensor, filled when its chunk is judged."""
        import torch

        if getattr(image, "ndim", 0) == 4:  # DanceGRPO decodes batches of one: (1, C, H, W)
            if image.shape[0] != 1:
                raise ValueError(f"add() takes one image, got a batch of {image.shape[0]}")
            image = image[0]
        slot = torch.zeros(1, dtype=torch.float32)
        self._images.append(image)
        self._prompts.append(str(prompt))
        self._sources.append(source)
        self._slots.append(slot)
        self.rewards.append(slot)
        if len(self._images) == self.num_generations:
            self._judge_chunk()
        return slot

    def _judge_chunk(self) -> None:
        images, prompts, sources, slots = self._images, self._prompts, self._sources, self._slots
        self._images, self._prompts, self._sources, self._slots = [], [], [], []
        has_source = [s is not None for s in sources]
        if any(has_source) and not all(has_source):
            raise RewardGroupError("a chunk mixes samples with and without a source image")
        # group_size = the chunk: a chunk mixing prompts or source images is refused, not split
        result = self.scorer.score_batch(images, prompts, sources if all(has_source) else None)
        for slot, value in zip(slots, result.scores, strict=True):
            slot.fill_(value)

    def finish(self) -> Any:
        """All rewards of this step as one tensor; fails if the last chunk is incomplete. Resets."""
        import torch

        if self._images:
            pending = len(self._images)
            self._images, self._prompts, self._sources, self._slots = [], [], [], []
            raise RewardGroupError(
                f"the last chunk has {pending} of {self.num_generations} images; it was never judged"
            )
        rewards = torch.cat(self.rewards) if self.rewards else torch.zeros(0)
        self.rewards = []
        return rewards

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.scorer.stats)
