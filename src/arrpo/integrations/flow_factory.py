"""The arrpo reward as a Flow-Factory (X-GenGroup/Flow-Factory) groupwise reward model.

Flow-Factory loads a reward named in the YAML config by import path and builds it as
``cls(config=RewardArguments, accelerator=accelerator)``; its ``BaseRewardModel.__init__`` sets
``.accelerator``, ``.config``, ``.device``, ``.dtype`` and ``.model``; extra YAML keys of the
entry arrive in ``config.extra_kwargs``. Its ``RewardProcessor`` hands each whole group (samples
of one ``unique_id``) to one call, with only the arguments ``__call__`` declares (media as PIL):
with the ``distributed_k_repeat`` sampler it first gathers, from every rank, the sample fields
named in ``required_fields`` (reading each with ``getattr``: a text-to-image ``T2ISample`` has no
``condition_images``), with ``group_contiguous`` it groups on the rank. With ``async_reward: true``
its ``RewardBuffer`` submits each complete group to a thread pool of ``num_workers`` threads and
collects them in ``finalize()``, which raises a failed call's exception itself.

:class:`ArrpoReward` declares ``prompt`` and ``image`` (and ``condition_images`` with
``task: edit``, whose first image is the source; ``metadata`` in pointwise mode). It keeps no
per-thread state, so several workers judge several groups at once, within the process's share
of the service's capacity. One config entry registers it::

    rewards:
      - name: arrpo
        reward_model: arrpo.integrations.flow_factory.ArrpoReward
        url: http://judge-host:8080          # else $ARRPO_SERVICE_URL
        task: edit                           # for image editing; t2i is the default
        preset: official                     # any GroupScorer option
        host_std: group                      # only with global_std: false, advantage_aggregation: sum

A masked sample gets 0.0 with its whole group, exact where Flow-Factory divides by each group's
own std (``global_std: false`` and ``advantage_aggregation: sum``), which ``host_std: group``
states. Under Flow-Factory's defaults (one std of the batch, or GDPO's batch normalisation) this
call, which sees one group, cannot keep the other advantages exact: a masked sample fails the
step (``host_std: batch``, the default) with those settings in the message.

When Flow-Factory is installed, :class:`ArrpoReward` subclasses its ``GroupwiseRewardModel`` (so
the processor routes it down the groupwise path and the base ``__init__`` runs); without it, a
stand-in base with the same constructor semantics is used.
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

    required_fields = ("prompt", "image")
    use_tensor_inputs = False

    def __init__(self, config: Any, accelerator: Any = None):
        super().__init__(config, accelerator)
        settings = _settings(config)
        url = settings.pop("url", None) or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"no reward service URL: set `url:` in the reward's config or ${URL_ENV}")
        self.anchor_key = settings.pop("anchor_key", "anchor_image")
        self.task = settings.get("task") or "t2i"
        # Flow-Factory gathers each group onto one rank itself: no exchange between ranks here,
        # but every rank judges against the same service, so each keeps to its share of it.
        ranks = getattr(accelerator, "num_processes", None) or 1
        settings.setdefault("host_std", "batch")  # Flow-Factory's defaults: global_std true, GDPO
        self.scorer = GroupScorer(url, exchange=LocalExchange(), ranks=ranks, host="flow_factory", **settings)
        fields = list(type(self).required_fields)
        if self.task == "edit":  # the gathered samples must carry their source image
            fields.append("condition_images")
        if self.scorer.mode == "pointwise":  # anchors come from each sample's dataset metadata
            fields.append("metadata")
        self.required_fields = tuple(fields)

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
        if condition_images is not None and self.task != "edit":
            raise RewardGroupError(
                "this group's samples have condition images, so this is an image-editing run: add `task: edit` "
                "to the arrpo reward's config entry (its source images are then gathered and judged with it)"
            )
        if condition_images is not None:  # per sample: a list (or stacked tensor) of condition images
            sources = [_first(c) for c in condition_images]
        elif self.task == "edit":
            raise RewardGroupError(
                "task: edit, but this group has no condition images (the source image of each edit); check the "
                "dataset's image column, or remove `task: edit` for text-to-image"
            )
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
