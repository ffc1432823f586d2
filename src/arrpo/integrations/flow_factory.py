"""A Flow-Factory-style *groupwise* reward model backed by the arrpo service.

Flow-Factory hands a groupwise model all samples of one group at once:
``model(prompt=[...], image=[...], condition_images=[...])`` and reads ``.rewards`` from the
result. This class has that interface without depending on Flow-Factory; to register it there,
subclass it together with their ``GroupwiseRewardModel`` (see ``docs/serving.md``).

Settings come from keyword arguments, else from attributes of the ``config`` object Flow-Factory
passes (``arrpo_url``, ``arrpo_preset``, ...), else from ``ARRPO_SERVICE_URL``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from arrpo.integrations.groups import GroupScorer


@dataclass
class GroupRewardOutput:
    """``rewards``: a torch tensor when torch is loaded, else a list; ``extra``: what stands behind them."""

    rewards: Any
    extra: dict[str, Any] = field(default_factory=dict)


class ArrpoGroupwiseReward:
    """Groupwise reward: one call per group of samples for the same prompt."""

    required_fields = ("prompt", "image")
    use_tensor_inputs = False  # tensors in [0, 1] work too

    def __init__(self, config: Any = None, accelerator: Any = None, *, url: str | None = None, **options: Any):
        def setting(name: str, default: Any = None) -> Any:
            return options.pop(name, getattr(config, f"arrpo_{name}", default))

        url = url or getattr(config, "arrpo_url", None) or os.environ.get("ARRPO_SERVICE_URL")
        if not url:
            raise ValueError("no reward service URL: pass url=..., set config.arrpo_url or ARRPO_SERVICE_URL")
        self.config = config
        self.accelerator = accelerator
        self.scorer = GroupScorer(
            url,
            token=setting("token"),
            score=setting("score", "reward"),
            preset=setting("preset", "official"),
            **options,
        )

    def __call__(
        self, prompt: list[str], image: Any = None, video: Any = None,
        condition_images: Any = None, condition_videos: Any = None,
    ) -> GroupRewardOutput:
        if image is None:
            raise ValueError("ArrpoGroupwiseReward judges images; no images were given")
        if video is not None or condition_videos is not None:
            raise ValueError("video rewards are not supported by the arrpo service")
        sources = None
        if condition_images is not None:  # one list of condition images per sample: the first is the source
            sources = [c[0] if isinstance(c, (list, tuple)) or getattr(c, "ndim", 3) == 4 else c
                       for c in condition_images]
        result = self.scorer.score_batch(image, list(prompt), sources)
        rewards: Any = result.scores
        if "torch" in sys.modules:
            import torch

            rewards = torch.tensor(rewards, dtype=torch.float32)
        return GroupRewardOutput(rewards=rewards, extra=result.info())
