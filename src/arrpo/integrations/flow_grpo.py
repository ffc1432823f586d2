"""The arrpo reward in Flow-GRPO (yifan123/flow_grpo), registered the way its rewards are.

Flow-GRPO's train scripts build their reward with ``flow_grpo.rewards.multi_score(device,
config.reward_fn)`` and submit ``reward_fn(images, prompts, metadata, only_strict=True)`` to an
8-worker thread pool once per sampling batch (Kontext passes the source images 4th,
``ref_images``); ``images`` is the pipeline's float NCHW tensor in [0, 1]. They read every
future only after the last batch, turn each value of ``rewards.items()`` into a float32 tensor,
gather across ranks and compute per-prompt advantages from ``rewards["avg"]`` with
``PerPromptStatTracker``, which never sees a mask. Evaluation calls pass ``only_strict=False``
with one sample per prompt and log each reward's mean over values other than ``-10``.

One line at the end of ``flow_grpo/rewards.py`` adds the ``"arrpo"`` reward name (it works with
the released ``multi_score``, which has no ``ref_images``, and the newer one)::

    from arrpo.integrations.flow_grpo import with_arrpo; multi_score = with_arrpo(multi_score)

and the config selects it: ``config.reward_fn = {"arrpo": 1.0}`` (other names go to Flow-GRPO's
own rewards and are summed with their weights). Settings come from the environment:
``ARRPO_SERVICE_URL``, ``ARRPO_SERVE_TOKEN`` and ``ARRPO_REWARD_OPTIONS``, a JSON object of
:class:`~arrpo.integrations.groups.GroupScorer` options that must name ``samples_per_prompt``
(``config.sample.num_image_per_prompt``): Flow-GRPO's samplers spread a prompt's k samples over
ranks and, with the newer sampler, over the batches of an epoch, and only k says when a group
is whole.

Training calls return at once with values that are read when Flow-GRPO reads them, after
sampling (:mod:`arrpo.integrations.assembly` assembles and judges the groups meanwhile, each as
soon as it is complete). Evaluation judges each sample against its prompt's *anchor*: the
metadata's ``anchor_image`` if given, else that prompt's image from the first evaluation, so
``eval_reward_arrpo`` is the win rate against the first evaluated model (0.5 at the first one).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from arrpo._sync import run_sync
from arrpo.client import RewardServiceError
from arrpo.convert import image_bytes, split_images
from arrpo.integrations.assembly import BatchScores, Pending
from arrpo.integrations.groups import GroupScorer, RewardGroupError
from arrpo.masking import MASKED_VALUE, batch_std_refusal
from arrpo.step_monitor import StepMonitor, cause_of

#: The reward's name in ``config.reward_fn`` and in the returned dict.
NAME = "arrpo"
URL_ENV = "ARRPO_SERVICE_URL"
OPTIONS_ENV = "ARRPO_REWARD_OPTIONS"
#: Flow-GRPO's evaluation logging skips this value ("no score for this sample").
FLOW_GRPO_NO_VALUE = -10.0
#: Evaluation value of a sample by its verdict against the anchor (the sample shown as A).
EVAL_VALUE = {"A": 1.0, "B": 0.0, "tie": 0.5}


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


class LazyValues(Mapping[str, Any]):
    """A reward dict whose values are computed when first read (keys are known at once).

    Flow-GRPO reads ``rewards.items()`` after sampling; by then the groups are judged.
    """

    def __init__(self, keys: Sequence[str], compute: Callable[[], dict[str, Any]]):
        self._keys = list(keys)
        self._compute = compute
        self._values: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _resolved(self) -> dict[str, Any]:
        with self._lock:
            if self._values is None:
                self._values = self._compute()
            return self._values

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        return self._resolved()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class AnchorEval:
    """Flow-GRPO's evaluation: each sample judged against its prompt's anchor (see the module)."""

    def __init__(self, scorer: GroupScorer, anchor_key: str):
        self.scorer = scorer
        self.anchor_key = anchor_key
        self.anchors: dict[tuple[str, str | None], bytes] = {}
        monitor = scorer.monitor
        self.monitor = StepMonitor(monitor.max_invalid_share, monitor.max_dead_steps, what="evaluation call")
        self._lock = threading.Lock()

    def __call__(self, images: Any, prompts: Sequence[str], metadata: Any, ref_images: Any) -> list[float]:
        items = [image_bytes(im) for im in split_images(images)]
        n = len(items)
        sources = [image_bytes(s) for s in ref_images] if ref_images is not None else [None] * n
        anchors = []
        with self._lock:
            for k in range(n):
                given = metadata[k].get(self.anchor_key) if metadata and isinstance(metadata[k], dict) else None
                key = (str(prompts[k]), hashlib.sha256(sources[k]).hexdigest() if sources[k] else None)
                anchors.append(image_bytes(given) if given is not None else self.anchors.setdefault(key, items[k]))
        todo = [k for k in range(n) if anchors[k] != items[k]]
        verdicts = run_sync(self.scorer.compare_all(
            [(str(prompts[k]), items[k], anchors[k], sources[k]) for k in todo]))
        values = [EVAL_VALUE["tie"]] * n  # a sample that is its own anchor: the first evaluation
        causes: dict[str, int] = {}
        failures = []
        for k, verdict in zip(todo, verdicts, strict=True):
            if isinstance(verdict, RewardServiceError):
                failures.append(verdict)
                cause = f"service answered {verdict.status} ({verdict.code})"
            elif verdict.winner in EVAL_VALUE:
                values[k] = EVAL_VALUE[verdict.winner]
                continue
            else:
                cause = f"invalid verdict: {verdict.invalid_reason or '?'}"
            values[k] = FLOW_GRPO_NO_VALUE
            causes[cause_of(cause)] = causes.get(cause_of(cause), 0) + 1
        if failures and self.scorer.on_failure == "raise":
            first = failures[0]
            raise RewardServiceError(first.status, first.code, f"{first.message} [{len(failures)} of {n} evaluation "
                                                               "comparison(s) failed]")
        self.monitor.step(n, sum(v == FLOW_GRPO_NO_VALUE for v in values), causes)
        return values


class ArrpoRewardFn:
    """Flow-GRPO reward: ``(images, prompts, metadata, ref_images=None, only_strict=True)`` →
    ``({"arrpo": scores, "avg": scores}, {"arrpo": info})``; in training both mappings are read
    lazily (see the module).

    ``url`` defaults to ``$ARRPO_SERVICE_URL``; options (``$ARRPO_REWARD_OPTIONS`` and keyword
    arguments, the latter winning) are those of :class:`~arrpo.integrations.groups.GroupScorer`,
    plus ``anchor_key``: the ``metadata`` field holding a prompt's anchor image (a path or an
    image) for evaluation and pointwise mode. Construct it on every rank (it sets up the rank
    exchange).
    """

    def __init__(self, url: str | None = None, *, anchor_key: str = "anchor_image", **options: Any):
        settings = {**options_from_env(), **options}
        anchor_key = settings.pop("anchor_key", anchor_key)
        url = url or settings.pop("url", None) or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"no reward service URL: set ${URL_ENV} (or pass url=...)")
        if settings.get("mode", "group") == "group" and not settings.get("samples_per_prompt"):
            raise ValueError(
                "Flow-GRPO spreads a prompt's samples over ranks and sampling batches, so only the number of "
                "samples per prompt says when a group is whole: set samples_per_prompt to "
                f"config.sample.num_image_per_prompt, e.g. {OPTIONS_ENV}='{{\"samples_per_prompt\": 16}}'"
            )
        self.anchor_key = anchor_key
        settings.setdefault("host_std", "batch")  # Flow-GRPO's default config.sample.global_std = True
        self.scorer = GroupScorer(url, window_steps=True, host="flow_grpo", **settings)
        self.evaluation = AnchorEval(self.scorer, anchor_key)

    def __call__(self, images: Any, prompts: Sequence[str], metadata: Any = None, ref_images: Any = None,
                 only_strict: bool = True) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        if not only_strict:
            scores = self.evaluation(images, list(prompts), metadata, ref_images)
            return {NAME: scores, "avg": list(scores)}, {}
        if self.scorer.mode == "pointwise":
            anchors = [m.get(self.anchor_key) if isinstance(m, dict) else None
                       for m in (metadata or [None] * len(prompts))]
            result = self.scorer.score_batch(images, list(prompts), ref_images, anchors)
            return {NAME: result.scores, "avg": list(result.scores)}, {NAME: result.info()}
        pending = self.pending(images, prompts, ref_images)
        return (LazyValues([NAME, "avg"], lambda: {NAME: pending().scores, "avg": list(pending().scores)}),
                LazyValues([NAME], lambda: {NAME: pending().info()}))

    def pending(self, images: Any, prompts: Sequence[str], ref_images: Any) -> Callable[[], BatchScores]:
        """Submit a training call; the returned function gives its scores (blocking until judged)."""
        handle: Pending = self.scorer.assembler.submit(images, [str(p) for p in prompts],
                                                        list(ref_images) if ref_images is not None else None)
        done: list[BatchScores] = []
        lock = threading.Lock()

        def result() -> BatchScores:
            with lock:
                if not done:
                    done.append(self.scorer.finish(handle.result()))
                return done[0]

        return result

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counts: calls, samples, groups judged, masked, failed and unjudgeable."""
        return self.scorer.stats


def arrpo_score(device: Any = None) -> Callable[..., tuple[list[float], dict[str, Any]]]:
    """A scorer factory shaped like Flow-GRPO's own (``name(device) -> _fn``), for its
    ``score_functions`` table: ``_fn(images, prompts, metadata, ref_images=None, only_strict=True)
    -> (scores, info)``. ``multi_score`` uses the scores inside the call, so this one waits for
    them there: a group must complete within the calls Flow-GRPO runs at once (its pool has 8
    workers); prefer :func:`with_arrpo`, which never waits inside a call."""
    reward = ArrpoRewardFn()

    def _fn(images: Any, prompts: Sequence[str], metadata: Any = None, ref_images: Any = None,
            only_strict: bool = True) -> tuple[list[float], dict[str, Any]]:
        scores, info = reward(images, prompts, metadata, ref_images, only_strict)
        return list(scores[NAME]), dict(info).get(NAME, {})

    _fn.reward = reward  # type: ignore[attr-defined]
    return _fn


def masked_totals(total: list[float], mask: list[bool] | None, host_std: str) -> list[float]:
    """``avg`` with Flow-GRPO's own rewards summed in: a masked sample's total is :data:`MASKED_VALUE`
    (its group is masked whole, so the group stays constant) under a per-group std; under the
    batch std its value would need every rank's other rewards, so the step fails."""
    if mask is None or all(mask):
        return total
    if host_std == "batch":
        raise RewardGroupError(batch_std_refusal(
            "flow_grpo", mask.count(False), "config.reward_fn sums other rewards into avg, which arrpo sees only "
            "for this rank's samples"))
    return [t if valid else MASKED_VALUE for t, valid in zip(total, mask, strict=True)]


def _passes_ref_images(fn: Callable[..., Any]) -> bool:
    """Whether Flow-GRPO's ``_fn`` takes ``ref_images`` (the released one does not)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return "ref_images" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def with_arrpo(multi_score: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap Flow-GRPO's ``multi_score(device, score_dict)`` so ``score_dict`` may name ``"arrpo"``.

    The returned factory builds Flow-GRPO's own rewards for the other names (if any) and returns
    ``_fn(images, prompts, metadata, ref_images=None, only_strict=True) -> (details, info)`` where
    ``details`` has one list per reward name and ``"avg"``, the weighted sum, as ``multi_score``'s
    consumers expect. ``ref_images`` reaches Flow-GRPO's own ``_fn`` only if it takes it.
    """

    def arrpo_multi_score(device: Any, score_dict: dict[str, float]) -> Callable[..., Any]:
        weight = score_dict.get(NAME)
        others = {name: w for name, w in score_dict.items() if name != NAME}
        inner = multi_score(device, others) if others else None
        takes_ref = inner is not None and _passes_ref_images(inner)
        reward = ArrpoRewardFn() if weight is not None else None

        def own(images: Any, prompts: Sequence[str], metadata: Any, ref_images: Any, only_strict: bool) -> dict:
            if inner is None:
                return {}
            extra = {"ref_images": ref_images} if takes_ref else {}
            details, _ = inner(images, prompts, metadata, only_strict=only_strict, **extra)
            return dict(details)

        def _fn(images: Any, prompts: Sequence[str], metadata: Any, ref_images: Any = None,
                only_strict: bool = True) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
            details = own(images, prompts, metadata, ref_images, only_strict)
            if reward is None:
                return details, {}
            base = [float(v) for v in details.pop("avg")] if inner is not None else None

            def combined(scores: list[float], mask: list[bool] | None = None) -> dict[str, Any]:
                total = [weight * s for s in scores]  # type: ignore[operator]
                if base is not None:
                    total = [a + b for a, b in zip(base, total, strict=True)]
                    total = masked_totals(total, mask, reward.scorer.host_std)  # type: ignore[union-attr]
                if not only_strict:  # evaluation: a sample the judge could not score stays "no value"
                    total = [FLOW_GRPO_NO_VALUE if s == FLOW_GRPO_NO_VALUE else t
                             for s, t in zip(scores, total, strict=True)]
                return {**details, NAME: scores, "avg": total}

            if not only_strict or reward.scorer.mode == "pointwise":
                scores, info = reward(images, prompts, metadata, ref_images, only_strict)
                return combined(list(scores[NAME])), dict(info)
            result = reward.pending(images, prompts, ref_images)
            keys = [*details, NAME, "avg"]
            return (LazyValues(keys, lambda: combined(list(result().scores), result().mask)),
                    LazyValues([NAME], lambda: {NAME: result().info()}))

        _fn.arrpo = reward  # type: ignore[attr-defined]
        return _fn

    return arrpo_multi_score
