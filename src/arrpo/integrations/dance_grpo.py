"""The arrpo reward in DanceGRPO's per-image decode loop.

DanceGRPO has no reward hook. In ``train_grpo_flux.py`` each rank repeats every caption
``num_generations`` times contiguously, then samples one image at a time: ``batch_caption`` is a
one-element list, ``image`` the VAE's raw output (a (1, 3, H, W) tensor in [−1, 1]) and
``decoded_image`` its post-processed list of one PIL image; each inline score is a 1-element
tensor appended to a list, concatenated into the step's rewards, and (``use_group``) normalised
per contiguous chunk of ``num_generations``. A pairwise judge cannot score one image alone, so
:class:`ChunkRewards` buffers the images of the current chunk and judges the chunk, all pairs,
as soon as its last image arrives. :meth:`ChunkRewards.add` returns a 1-element tensor that is
filled in place then, so it stands exactly where the inline score stood::

    arrpo_rewards = ChunkRewards(args.num_generations)          # once, next to the reward model
    ...
    reward = arrpo_rewards.add(decoded_image[0], batch_caption[0])   # in the loop, for the HPS call
    all_rewards.append(reward)

The raw ``image`` tensor works too when its range is stated (``ChunkRewards(n,
value_range=(-1, 1))``); a float tensor without it, or the whole ``caption`` list, is refused with
the fix. ``finish()`` (optional, once per step) checks that the last chunk is complete and
returns the rewards; a chunk that mixes prompts or source images, a group over the service's
image limit, or a failed request raises at once (or, with ``on_failure="mask"``, masks the
chunk: its rewards 0.0, logged and counted).
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
        value_range: the value range of float tensors given to :meth:`add`: ``(-1, 1)`` for the
            VAE's raw output, ``(0, 1)`` for images already scaled; None (default) accepts PIL
            images and uint8 arrays only, refusing float tensors whose range it would have to guess.
        split_large_groups: judge a chunk over the service's image limit (``/health``, or
            ``max_group_images``) as near-equal sub-groups instead of refusing it at construction.
        options: further :class:`~arrpo.integrations.groups.GroupScorer` options.
    """

    def __init__(self, num_generations: int, url: str | None = None, *, value_range: tuple[float, float] | None = None,
                 split_large_groups: bool = False, **options: Any):
        if not isinstance(num_generations, int) or num_generations < 2:
            raise RewardGroupError(
                f"num_generations={num_generations!r}: a pairwise reward needs at least 2 images per prompt"
            )
        if value_range is not None and not (len(value_range) == 2 and value_range[0] < value_range[1]):
            raise ValueError(f"value_range must be (low, high) with low < high, not {value_range!r}")
        url = url or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"no reward service URL: set ${URL_ENV} (or pass url=...)")
        self.num_generations = num_generations
        self.value_range = value_range
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

    def add(self, image: Any, prompt: Any, source: Any = None) -> Any:
        """Buffer one decoded image (PIL, uint8 HWC/CHW array or tensor, or a float tensor in
        ``value_range``; a batch of one is fine) and return its reward slot: a 1-element float
        tensor, filled when its chunk is judged."""
        import torch

        image = self._one_image(image)
        prompt = _one_prompt(prompt)
        if self._prompts and (prompt != self._prompts[0] or (source is None) != (self._sources[0] is None)):
            first = self._prompts[0]
            self._clear()
            raise RewardGroupError(
                f"a chunk of {self.num_generations} images mixes prompts ({first[:60]!r}, then {prompt[:60]!r}) or "
                "images with and without a source: ChunkRewards judges each run of num_generations images as one "
                "prompt's group, so call add() for one prompt's images contiguously (DanceGRPO's use_group "
                "repeats each caption num_generations times in a row), with the caption of that image "
                "(batch_caption[0])"
            )
        slot = torch.zeros(1, dtype=torch.float32)
        self._images.append(image)
        self._prompts.append(prompt)
        self._sources.append(source)
        self._slots.append(slot)
        self.rewards.append(slot)
        if len(self._images) == self.num_generations:
            self._judge_chunk()
        return slot

    def _one_image(self, image: Any) -> Any:
        if getattr(image, "ndim", 0) == 4:  # a batch of one: (1, C, H, W)
            if image.shape[0] != 1:
                raise ValueError(f"add() takes one image, got a batch of {image.shape[0]}")
            image = image[0]
        if isinstance(image, (list, tuple)):
            raise ValueError("add() takes one image, not a list: pass decoded_image[0]")
        dtype = str(getattr(image, "dtype", ""))
        if "float" not in dtype and "bfloat" not in dtype:
            return image
        if self.value_range is None:
            raise ValueError(
                "add() got a float tensor, whose value range it cannot know: in DanceGRPO's loop pass "
                "decoded_image[0] (the PIL image), or build ChunkRewards(..., value_range=(-1, 1)) to pass the "
                "VAE's raw output `image`"
            )
        low, high = self.value_range
        scaled = (image.float() - low) / (high - low)
        if float(scaled.min()) < -1e-3 or float(scaled.max()) > 1 + 1e-3:
            raise ValueError(f"add() got values from {float(image.min()):.3f} to {float(image.max()):.3f}, outside "
                             f"value_range={self.value_range}")
        return scaled.clamp(0.0, 1.0)

    def _clear(self) -> None:
        self._images, self._prompts, self._sources, self._slots = [], [], [], []

    def _judge_chunk(self) -> None:
        images, prompts, sources, slots = self._images, self._prompts, self._sources, self._slots
        self._clear()
        has_source = sources[0] is not None
        result = self.scorer.score_batch(images, prompts, sources if has_source else None)
        for slot, value in zip(slots, result.scores, strict=True):
            slot.fill_(value)

    def finish(self) -> Any:
        """All rewards of this step as one tensor; fails if the last chunk is incomplete. Resets,
        and ends the step for the dead-step monitor."""
        import torch

        if self._images:
            pending = len(self._images)
            self._clear()
            raise RewardGroupError(
                f"the last chunk has {pending} of {self.num_generations} images; it was never judged"
            )
        rewards = torch.cat(self.rewards) if self.rewards else torch.zeros(0)
        self.rewards = []
        self.scorer.monitor.end_step()
        return rewards

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.scorer.stats)


def _one_prompt(prompt: Any) -> str:
    """One caption: a string, or the one-element ``batch_caption`` list."""
    if isinstance(prompt, (list, tuple)):
        if len(prompt) != 1:
            raise ValueError(
                f"add() takes the caption of this one image, not a list of {len(prompt)}: in DanceGRPO's loop pass "
                "batch_caption[0] (`caption` there is every caption of the step)"
            )
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ValueError(f"add() takes the caption as text, not {type(prompt).__name__}")
    return prompt
