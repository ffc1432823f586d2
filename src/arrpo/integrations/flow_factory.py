"""The arrpo reward as a Flow-Factory (X-GenGroup/Flow-Factory) groupwise reward model.

Flow-Factory loads a reward named in the YAML config by import path and builds it as
``cls(config=RewardArguments, accelerator=accelerator)``; its ``BaseRewardModel.__init__`` sets
``.accelerator``, ``.config``, ``.device``, ``.dtype`` and ``.model``. Its ``RewardProcessor``
gathers, across ranks, only the sample fields named in ``required_fields``, groups the samples by
their sampler-assigned id, hands each whole group to one rank, passes only the arguments that
``__call__`` declares (media converted to PIL images), and reads ``.rewards`` from the result.
Extra YAML keys of a reward entry arrive in ``config.extra_kwargs``.

With ``async_reward: true`` Flow-Factory computes rewards while it samples: its ``RewardBuffer``
reads ``.device.type`` of every reward, its sampler keeps each group's k samples on one rank, and
as soon as a group's k samples are in, one background thread (plain ``threading``, no event loop)
calls the reward with that group, the declared arguments taken from the whole samples (so
``metadata`` arrives too), and stores ``.rewards`` per sample. :class:`ArrpoReward` needs nothing
else there: it keeps no per-thread state, judges from any thread through arrpo's own event loop,
and each call is one whole local group. An error on that thread stops the buffer's worker;
Flow-Factory raises it on the main thread (``RuntimeError`` chained to ours) at the next batch,
so use ``on_failure: mask`` to keep a run going through an unreachable service.

One line of config registers it::

    rewards:
      - name: arrpo
        reward_model: arrpo.integrations.flow_factory.ArrpoReward
        url: http://judge-host:8080          # else $ARRPO_SERVICE_URL
        preset: official                     # any GroupScorer option

When Flow-Factory is installed, :class:`ArrpoReward` subclasses its ``GroupwiseRewardModel`` (so
the processor routes it down the groupwise path and the base ``__init__`` runs); without it, a
stand-in base with the same constructor semantics is used, so the class can be tested and used
on its own. For edits, ``condition_images`` (the first one of each sample is the source image)
is a required field, so it is gathered with the samples. With ``mode: pointwise`` each sample is
judged against the anchor image named in its dataset metadata (``anchor_image``, a path), and
``metadata`` becomes a required field too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from arrpo.integrations.exchange import LocalExchange
from arrpo.integrations.groups import GroupScorer, RewardGroupError

URL_ENV = "ARRPO_SERVICE_URL"

try:  # pragma: no cover - exercised only where Flow-Factory is installed
    from flow_factory.rewards.abc import GroupwiseRewardModel as _Base
    from flow_factory.rewards.abc import RewardModelOutput as _Output

    FLOW_FACTORY = True
except ImportError:
    FLOW_FACTORY = False

    @dataclass
    class _Output:  # type: ignore[no-redef]
        """Flow-Factory's ``RewardModelOutput`` shape: ``rewards`` and ``extra_info``."""

        rewards: Any
        extra_info: dict[str, Any] | None = None

    class _Base:  # type: ignore[no-redef]
        """Flow-Factory's ``BaseRewardModel`` constructor semantics, without Flow-Factory."""

        required_fields: tuple[str, ...] = ()
        use_tensor_inputs: bool = False

        def __init__(self, config: Any, accelerator: Any):
            self.accelerator = accelerator
            self.config = config
            self.device = _device(getattr(config, "device", "cpu"), accelerator)
            self.dtype = getattr(config, "dtype", None)
            self.model = None

        def to(self, device: Any) -> Any:
            self.device = device
            return self


RewardModelOutput = _Output


def _device(configured: Any, accelerator: Any) -> Any:
    """As Flow-Factory's base: ``cuda`` means the accelerator's device; a name becomes a
    ``torch.device`` (its async reward buffer reads ``.device.type`` of every reward)."""
    if str(configured) == "cuda" and accelerator is not None:
        return accelerator.device
    try:
        import torch
    except ImportError:  # pragma: no cover - the trainers all have torch
        return configured
    return torch.device(configured) if isinstance(configured, str) else configured


def _settings(config: Any) -> dict[str, Any]:
    extra = getattr(config, "extra_kwargs", None)
    return dict(extra) if isinstance(extra, dict) else {}


class ArrpoReward(_Base):
    """Groupwise reward: one call per whole group of samples of one prompt (and source image)."""

    required_fields = ("prompt", "image", "condition_images")
    use_tensor_inputs = False

    def __init__(self, config: Any, accelerator: Any = None):
        super().__init__(config, accelerator)
        settings = _settings(config)
        url = settings.pop("url", None) or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"no reward service URL: set `url:` in the reward's config or ${URL_ENV}")
        self.anchor_key = settings.pop("anchor_key", "anchor_image")
        # Flow-Factory gathers each group onto one rank itself: no exchange between ranks here.
        self.scorer = GroupScorer(url, exchange=LocalExchange(), **settings)
        if self.scorer.mode == "pointwise":  # anchors come from each sample's dataset metadata
            self.required_fields = (*type(self).required_fields, "metadata")

    def __call__(
        self, prompt: list[str], image: Any = None, condition_images: Any = None, metadata: Any = None,
    ) -> Any:
        if image is None:
            raise ValueError("the arrpo reward judges images; this group has none")
        if len(image) < 2 and self.scorer.mode == "group" and self.scorer.on_failure == "raise":
            raise RewardGroupError(
                f"Flow-Factory handed a group of {len(image)} sample for prompt {str(prompt[0])[:80]!r}; "
                "a pairwise reward needs the group's samples together: set the sampler's group_size "
                "(samples per prompt) to 2 or more"
            )
        sources = None
        if condition_images is not None:  # per sample: a list (or stacked tensor) of condition images
            sources = [_first(c) for c in condition_images]
        anchors = None
        if self.scorer.mode == "pointwise":
            anchors = [_metadata(m).get(self.anchor_key) for m in (metadata or [None] * len(image))]
        result = self.scorer.score_batch(list(image), [str(p) for p in prompt], sources, anchors)
        rewards: Any = result.scores
        try:
            import torch

            rewards = torch.tensor(rewards, dtype=torch.float32)
        except ImportError:
            pass
        return RewardModelOutput(rewards=rewards, extra_info=result.info())


def _metadata(value: Any) -> dict[str, Any]:
    """Flow-Factory hands dataset metadata as one JSON string per sample."""
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    parsed = json.loads(value)
    return parsed if isinstance(parsed, dict) else {}


def _first(conditions: Any) -> Any:
    if isinstance(conditions, (list, tuple)):
        if not conditions:
            raise ValueError("a sample has an empty list of condition images")
        return conditions[0]
    if getattr(conditions, "ndim", 3) == 4:  # (num_conditions, C, H, W)
        return conditions[0]
    return conditions
