"""The arrpo reward in Flow-GRPO (yifan123/flow_grpo), registered the way its rewards are.

Flow-GRPO's train scripts build their reward with ``flow_grpo.rewards.multi_score(device,
config.reward_fn)`` and call it from a thread pool as ``reward_fn(images, prompts, metadata,
only_strict=True)`` (the Kontext script passes the source images as a 4th positional argument,
``ref_images``); ``images`` is the pipeline's float NCHW tensor in [0, 1]. The result is consumed
as ``(rewards, metadata)``: each value of ``rewards.items()`` becomes a tensor and is gathered
across ranks, and ``rewards["avg"]`` is what per-prompt advantages are computed from. Evaluation
calls pass ``only_strict=False`` and log each reward's mean over values other than ``-10``.

One line at the end of ``flow_grpo/rewards.py`` adds the ``"arrpo"`` reward name::

    from arrpo.integrations.flow_grpo import with_arrpo; multi_score = with_arrpo(multi_score)

and the config selects it: ``config.reward_fn = {"arrpo": 1.0}`` (other names still go to
Flow-GRPO's own rewards and are summed with their weights). Settings come from the environment:
``ARRPO_SERVICE_URL``, ``ARRPO_SERVE_TOKEN`` and ``ARRPO_REWARD_OPTIONS`` (a JSON object of
:class:`~arrpo.integrations.groups.GroupScorer` options, e.g. ``{"samples_per_prompt": 24}``).

Under several processes the sampler spreads a prompt's k samples over all ranks; this reward
all-gathers them, judges each prompt's whole group once and hands every rank its own samples'
rewards. A reward call must therefore run on every rank, in the same order (Flow-GRPO does:
one call per sampling batch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from arrpo.integrations.groups import GroupScorer

#: The reward's name in ``config.reward_fn`` and in the returned dict.
NAME = "arrpo"
URL_ENV = "ARRPO_SERVICE_URL"
OPTIONS_ENV = "ARRPO_REWARD_OPTIONS"
#: Flow-GRPO's evaluation logging skips this value ("no score for this sample").
FLOW_GRPO_NO_VALUE = -10.0


def options_from_env() -> dict[str, Any]:
    """``ARRPO_REWARD_OPTIONS`` as a dict (empty when unset)."""
    text = os.environ.get(OPTIONS_ENV, "").strip()
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"${OPTIONS_ENV} is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise ValueError(f"${OPTIONS_ENV} must be a JSON object of options, not {type(options).__name__}")
    return options


class ArrpoRewardFn:
    """Flow-GRPO reward: ``(images, prompts, metadata, ref_images=None, only_strict=True)`` →
    ``({"arrpo": scores, "avg": scores}, {"arrpo": info})``.

    ``url`` defaults to ``$ARRPO_SERVICE_URL``; options (``$ARRPO_REWARD_OPTIONS`` and keyword
    arguments, the latter winning) are those of :class:`~arrpo.integrations.groups.GroupScorer`,
    plus ``anchor_key``: in pointwise mode, the ``metadata`` field holding each prompt's anchor
    image (a path or an image). Construct it on every rank (it sets up the rank exchange).
    """

    def __init__(self, url: str | None = None, *, anchor_key: str = "anchor_image", **options: Any):
        settings = {**options_from_env(), **options}
        anchor_key = settings.pop("anchor_key", anchor_key)
        url = url or settings.pop("url", None) or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"no reward service URL: set ${URL_ENV} (or pass url=...)")
        self.anchor_key = anchor_key
        self.scorer = GroupScorer(url, **settings)

    def __call__(
        self, images: Any, prompts: Sequence[str], metadata: Any = None, ref_images: Any = None,
        only_strict: bool = True,
    ) -> tuple[dict[str, list[float]], dict[str, Any]]:
        anchors = None
        if self.scorer.mode == "pointwise":
            anchors = [m.get(self.anchor_key) if isinstance(m, dict) else None for m in (metadata or [None] * len(prompts))]
        # Flow-GRPO's evaluation (only_strict=False) scores single samples per prompt; those get
        # its "no value" marker rather than stopping the run. Training calls fail loudly.
        result = self.scorer.score_batch(
            images, list(prompts), ref_images, anchors,
            unscorable_value=None if only_strict else FLOW_GRPO_NO_VALUE,
        )
        return {NAME: result.scores, "avg": list(result.scores)}, {NAME: result.info()}

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counts: calls, samples, masked samples, failed and unjudgeable groups."""
        return dict(self.scorer.stats)


def arrpo_score(device: Any = None) -> Callable[..., tuple[list[float], dict[str, Any]]]:
    """A scorer factory shaped like Flow-GRPO's own (``name(device) -> _fn``): ``_fn(images,
    prompts, metadata, ref_images=None, only_strict=True) -> (scores, info)``."""
    reward = ArrpoRewardFn()

    def _fn(images: Any, prompts: Sequence[str], metadata: Any = None, ref_images: Any = None,
            only_strict: bool = True) -> tuple[list[float], dict[str, Any]]:
        scores, info = reward(images, prompts, metadata, ref_images, only_strict)
        return scores[NAME], info[NAME]

    _fn.reward = reward  # type: ignore[attr-defined]
    return _fn


def with_arrpo(multi_score: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap Flow-GRPO's ``multi_score(device, score_dict)`` so ``score_dict`` may name ``"arrpo"``.

    The returned factory builds Flow-GRPO's own rewards for the other names (if any) and returns
    ``_fn(images, prompts, metadata, ref_images=None, only_strict=True) -> (details, {})`` where
    ``details`` has one list per reward name and ``"avg"``, the weighted sum, as ``multi_score``'s
    consumers expect.
    """

    def arrpo_multi_score(device: Any, score_dict: dict[str, float]) -> Callable[..., Any]:
        weight = score_dict.get(NAME)
        others = {name: w for name, w in score_dict.items() if name != NAME}
        inner = multi_score(device, others) if others else None
        scorer = arrpo_score(device) if weight is not None else None

        def _fn(images: Any, prompts: Sequence[str], metadata: Any, ref_images: Any = None,
                only_strict: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
            details: dict[str, Any] = {}
            total: list[float] | None = None
            info: dict[str, Any] = {}
            if inner is not None:
                details, _ = inner(images, prompts, metadata, ref_images=ref_images, only_strict=only_strict)
                details = dict(details)
                total = [float(v) for v in details.pop("avg")]
            if scorer is not None:
                scores, info = scorer(images, prompts, metadata, ref_images, only_strict)
                details[NAME] = scores
                weighted = [weight * s for s in scores]
                total = weighted if total is None else [a + b for a, b in zip(total, weighted, strict=True)]
            if scorer is not None and not only_strict and total is not None:
                # evaluation: a sample the judge could not score stays "no value" in the sum too
                total = [FLOW_GRPO_NO_VALUE if s == FLOW_GRPO_NO_VALUE else t
                         for s, t in zip(details[NAME], total, strict=True)]
            details["avg"] = total if total is not None else []
            return details, {NAME: info} if info else {}

        _fn.arrpo = scorer  # type: ignore[attr-defined]
        return _fn

    return arrpo_multi_score
