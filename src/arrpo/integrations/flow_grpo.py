"""A drop-in reward function for Flow-GRPO / DanceGRPO-style trainers.

Those trainers call ``reward_fn(images, prompts, metadata)`` on a batch and expect
``(scores, info)``. Here the batch is split into groups of the same prompt, each group is judged
all-pairs by the arrpo service and mapped to rewards by a preset (default ``official``: winner
+1.0, loser −0.1). Images may be a list of PIL images, a uint8 NHWC numpy array or a float NCHW
torch tensor in [0, 1]. For editing, pass the source images as ``ref_images``.

Example::

    from arrpo.integrations.flow_grpo import ArrpoRewardFn
    reward_fn = ArrpoRewardFn("http://judge-host:8080", preset="official")
    scores, info = reward_fn(images, prompts, metadata)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arrpo.integrations.groups import GroupScorer


class ArrpoRewardFn:
    """Callable reward: ``(images, prompts, metadata=None, ref_images=None) -> (scores, info)``.

    ``scores`` is a list of floats in batch order; ``info`` holds rewards, advantages, the loss
    mask (False for samples without a usable comparison), groups and verdict counts. Constructor
    arguments are those of :class:`~arrpo.integrations.groups.GroupScorer` (``token``, ``score``,
    ``group_size``, ``preset``, ``order``, ``rubric``, ...).
    """

    def __init__(self, url: str, **options: Any):
        self.scorer = GroupScorer(url, **options)

    def __call__(
        self, images: Any, prompts: Sequence[str], metadata: Any = None,
        ref_images: Any = None, **_: Any,
    ) -> tuple[list[float], dict[str, Any]]:
        result = self.scorer.score_batch(images, list(prompts), ref_images)
        return result.scores, result.info()


def make_reward_fn(url: str, **options: Any) -> ArrpoRewardFn:
    """Factory in the style of those trainers' ``multi_score``/reward registries."""
    return ArrpoRewardFn(url, **options)
