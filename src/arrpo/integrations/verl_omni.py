"""The arrpo reward in verl-omni (verl's diffusion stack): a ``compute_score`` for its reward loop.

verl-omni's ``VisualRewardManager`` calls the configured function once per sample —
``compute_score(data_source=, solution_image=, ground_truth=, extra_info=)`` with the image a
``uint8`` CHW tensor, plus ``reward_router_address``, ``reward_model_tokenizer``, ``model_name``
and ``sampling_params`` when a reward router is configured — awaiting it when it is a coroutine
function. Without a reward model the calls stream: each sample is scored as soon as its own
rollout ends, in a reward-loop worker process picked at random (``reward.num_workers``, 8 by
default); with one, the batch is padded to a multiple of the workers (copies of its first
samples), cut into contiguous chunks and every sample of a chunk is scored at once. The step's
advantages are then ``(r − mean)/(std + 1e-4)`` per prompt (``uid``), with the batch's std by
default (``compute_flow_grpo_outcome_advantage``). The function sees neither the ``uid`` nor
whether the call is validation.

So no process ever holds a prompt's group, and this function does not try: each call sends its
one sample to the service's ``/v1/group_member`` with a group key, and the service assembles the
group, judges it once when all ``samples_per_prompt`` images are in and answers every call with
its own value (:mod:`arrpo.server.gather`: padding copies answered without counting, fragments
never judged, a group incomplete after ``group_timeout`` fails every call loudly). The key is
made of the run, ``data_source``, the row's ``extra_info["split"]`` and ``extra_info["index"]``
(``group_key`` fields), the prompt and the source image. Values follow the masked-value rule
(:mod:`arrpo.masking`): a group with a masked sample scores 0.0 throughout, which is zero
advantage under verl-omni's per-prompt centring and moves no other sample only with a per-group
std; say so with ``host_std: group``. Under verl-omni's default (``torch.std`` of the whole
batch, ``host_std: batch``) a masked sample fails the call (``RewardGroupError`` naming the
setting), since no call sees the batch.

Config (Hydra overrides; the settings may instead come from ``$ARRPO_REWARD_OPTIONS``, JSON)::

    reward.custom_reward_function.path=pkg://arrpo.integrations.verl_omni
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.url=http://judge-host:8080
    +reward.custom_reward_function.reward_kwargs.samples_per_prompt=16   # = actor_rollout_ref.rollout.n

The prompt is ``extra_info["prompt"]`` (``prompt_key``), else ``extra_info["instruction"]``, else
``ground_truth``; the source image of an edit is ``extra_info["source_img"]`` (``source_key``).
Rows whose ``extra_info["split"]`` is a validation split use ``val_samples_per_prompt`` (1 by
default); a group of 1 needs an anchor (``mode: pointwise`` or an ``extra_info["anchor_image"]``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from arrpo.client import TOKEN_ENV, AsyncRewardClient, RewardServiceError, validate_options
from arrpo.convert import image_bytes, is_ndarray, is_tensor
from arrpo.integrations.assembly import RewardGroupError
from arrpo.integrations.flow_grpo import OPTIONS_ENV, URL_ENV, options_from_env
from arrpo.integrations.groups import DEFAULT_RETRIES
from arrpo.masking import batch_std_notice, batch_std_refusal, check_host_std
from arrpo.step_monitor import MONITOR_DEFAULTS, StepMonitor, cause_of

log = logging.getLogger("arrpo.integrations")

RUN_ENV = "ARRPO_RUN_ID"
#: What verl-omni passes besides the sample when a reward router is configured (not used here).
ROUTER_KWARGS = ("reward_router_address", "reward_model_tokenizer", "model_name", "sampling_params")
#: The adapter's own settings and their defaults (every other key is a ``/v1/group_member`` option).
DEFAULTS: dict[str, Any] = {
    "url": None, "token": None, "samples_per_prompt": None, "val_samples_per_prompt": 1,
    "val_splits": ("test", "val", "validation", "eval"), "mode": "group", "score": "reward",
    "prompt_key": "prompt", "source_key": "source_img", "anchor_key": "anchor_image", "group_key": ("index",),
    "run_id": None, "host_std": "batch", "group_timeout": 900.0, "judge_timeout": 600.0, **DEFAULT_RETRIES, **MONITOR_DEFAULTS,
}
#: Keys of the returned dict; verl builds its extra-info arrays from the first sample's keys, so
#: every call returns the same ones.
RESULT_KEYS = ("score", "arrpo_mask", "arrpo_group_masked")


class Settings:
    """The adapter's settings from ``reward_kwargs`` over ``$ARRPO_REWARD_OPTIONS`` (checked once)."""

    def __init__(self, given: Mapping[str, Any]):
        values = {**options_from_env(), **{k: _plain(v) for k, v in given.items()}}
        request = {k: v for k, v in values.items() if k not in DEFAULTS}
        try:
            validate_options("group_rewards", request)  # a typo fails at the first call
        except ValueError as exc:
            raise ValueError(f"arrpo verl-omni reward: {exc}; the adapter's own settings: {sorted(DEFAULTS)}") from None
        self.request = request
        merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in DEFAULTS}}
        self.url = str(merged["url"] or os.environ.get(URL_ENV) or "").rstrip("/")
        if not self.url:
            raise ValueError(f"arrpo verl-omni reward: no service URL; set reward_kwargs.url or ${URL_ENV}")
        self.token = merged["token"] or os.environ.get(TOKEN_ENV) or None
        k = merged["samples_per_prompt"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(
                "arrpo verl-omni reward: samples_per_prompt must be set to actor_rollout_ref.rollout.n (whole "
                f"number >= 1), got {k!r}; only it says when a prompt's group is whole"
            )
        self.samples_per_prompt = k
        self.val_samples_per_prompt = int(merged["val_samples_per_prompt"])
        self.val_splits = {str(s) for s in merged["val_splits"]}
        if merged["mode"] not in ("group", "pointwise"):
            raise ValueError(f"mode must be 'group' or 'pointwise', not {merged['mode']!r}")
        if merged["score"] not in ("reward", "advantage"):
            raise ValueError(f"score must be 'reward' or 'advantage', not {merged['score']!r}")
        self.mode, self.score = merged["mode"], merged["score"]
        self.prompt_key, self.source_key, self.anchor_key = merged["prompt_key"], merged["source_key"], merged["anchor_key"]
        self.group_key = [str(f) for f in ([merged["group_key"]] if isinstance(merged["group_key"], str) else merged["group_key"])]
        self.run_id = str(merged["run_id"] or os.environ.get(RUN_ENV) or _ray_job_id())
        self.group_timeout = float(merged["group_timeout"])
        self.host_std = check_host_std(str(merged["host_std"]))
        if self.host_std == "batch":
            log.warning(batch_std_notice("verl_omni"))
        self.client = {
            "token": self.token, "timeout": self.group_timeout + float(merged["judge_timeout"]),
            "max_retries": int(merged["max_retries"]), "backoff": float(merged["backoff"]),
            "max_wait": float(merged["max_wait"]),
        }
        self.monitor = StepMonitor(**{k: merged[k] for k in MONITOR_DEFAULTS}, what="reward window")


def _plain(value: Any) -> Any:
    """OmegaConf lists/dicts (verl passes its config's values) as plain Python."""
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return value


def _ray_job_id() -> str:
    """The Ray job's id, shared by every reward worker of one verl-omni run ('' outside Ray)."""
    try:
        import ray  # verl runs on Ray; arrpo does not depend on it
    except ImportError:
        return ""
    try:
        return ray.get_runtime_context().get_job_id() if ray.is_initialized() else ""
    except Exception:
        return ""


_settings_lock = threading.Lock()
_settings: dict[str, Settings] = {}
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_said: set[str] = set()


def settings_for(given: Mapping[str, Any]) -> Settings:
    """One :class:`Settings` (and monitor) per distinct ``reward_kwargs`` in this process."""
    key = json.dumps({k: _plain(v) for k, v in given.items()}, sort_keys=True, default=str)
    key += "\n" + os.environ.get(OPTIONS_ENV, "")
    with _settings_lock:
        if key not in _settings:
            _settings[key] = Settings(given)
        return _settings[key]


def _client(settings: Settings) -> AsyncRewardClient:
    """One client per event loop and settings (verl's reward workers each run one long-lived loop)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (settings.url, tuple(sorted(settings.client.items())))
    if key not in per_loop:
        per_loop[key] = AsyncRewardClient(settings.url, **settings.client)
    return per_loop[key]


def _say_once(key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
    if key not in _said:
        _said.add(key)
        log.log(level, message, *args)


# ---------------------------------------------------------------------------- one sample
def solution_png(image: Any) -> bytes:
    """The sample's image as PNG bytes: a ``uint8`` tensor (C, H, W) — or (1, C, H, W) — as
    verl-omni gives it; float tensors in [0, 1], HWC arrays and PIL images are accepted too."""
    if is_tensor(image) or is_ndarray(image):
        shape = tuple(image.shape)
        if len(shape) == 4 and shape[0] == 1:
            image = image[0]
        elif len(shape) == 4:
            raise RewardGroupError(f"solution_image has shape {shape}: a video or a batch; arrpo judges one image")
        elif len(shape) not in (2, 3):
            raise RewardGroupError(f"solution_image has shape {shape}; expected one image (C, H, W)")
    return image_bytes(image)


def _media(value: Any) -> bytes | None:
    """A source or anchor image as verl-omni datasets hold it (parquet ``{"bytes"}`` / ``{"path"}``,
    PIL, array, tensor, bytes or a path)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        if value.get("path"):
            return image_bytes(str(value["path"]))
        return None
    return solution_png(value)


def _prompt(settings: Settings, ground_truth: Any, extra_info: Mapping[str, Any]) -> str:
    for key in (settings.prompt_key, "instruction"):
        value = extra_info.get(key)
        if isinstance(value, str) and value.strip():
            return value
    if isinstance(ground_truth, str) and ground_truth.strip():
        _say_once("prompt:ground_truth", "arrpo verl-omni reward: extra_info has no %r or 'instruction'; judging "
                  "against ground_truth as the prompt. Put the generation prompt in extra_info[%r] when "
                  "preparing the data if ground_truth is not the prompt", settings.prompt_key, settings.prompt_key)
        return ground_truth
    raise RewardGroupError(f"no prompt: extra_info has no {settings.prompt_key!r} or 'instruction' and ground_truth "
                           "is not text; add the generation prompt to extra_info when preparing the data")


def group_key(settings: Settings, data_source: Any, extra_info: Mapping[str, Any], prompt: str,
              source: bytes | None) -> str:
    """The key every sample of one prompt's group shares (and no other group of the run)."""
    parts = {
        "run": settings.run_id, "data_source": str(data_source), "split": str(extra_info.get("split")),
        "fields": {f: extra_info.get(f) for f in settings.group_key}, "prompt": prompt,
        "source": hashlib.sha256(source).hexdigest() if source is not None else None,
    }
    return "verl-omni:" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _member(settings: Settings, data_source: Any, solution_image: Any, ground_truth: Any,
            extra_info: Mapping[str, Any]) -> dict[str, Any]:
    """The ``/v1/group_member`` request of one sample (CPU work: runs off the event loop)."""
    prompt = _prompt(settings, ground_truth, extra_info)
    source = _media(extra_info.get(settings.source_key))
    anchor = _media(extra_info.get(settings.anchor_key))
    validating = str(extra_info.get("split")) in settings.val_splits
    size = settings.val_samples_per_prompt if validating else settings.samples_per_prompt
    if settings.mode == "pointwise" and anchor is None:
        raise RewardGroupError(f"mode pointwise: extra_info has no {settings.anchor_key!r} image for prompt "
                               f"{prompt[:80]!r}; give every row an anchor (e.g. the reference model's sample)")
    if settings.mode == "group" and size > 1:
        anchor = None
    if size < 2 and anchor is None:
        raise RewardGroupError(
            f"{'validation' if validating else 'training'} samples {size} image per prompt, and a pairwise judge "
            f"needs a group: set actor_rollout_ref.rollout.val_kwargs.n and reward_kwargs.val_samples_per_prompt "
            f"to 2 or more, give rows an extra_info[{settings.anchor_key!r}] image, or skip validation "
            "(trainer.val_before_train=False trainer.test_freq=-1)"
        )
    return {
        "prompt": prompt, "image": solution_png(solution_image), "source": source, "anchor": anchor,
        "group": group_key(settings, data_source, extra_info, prompt, source), "group_size": size,
        "wait": settings.group_timeout, **settings.request,
    }


async def compute_score(data_source: Any, solution_image: Any, ground_truth: Any = None,
                        extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, float]:
    """verl-omni's reward function: this sample's value from its whole group (see the module).

    Returns ``{"score", "arrpo_mask", "arrpo_group_masked"}`` (the score, and 1.0/0.0 flags).

    Raises:
        RewardServiceError: the service failed or refused (e.g. 504 ``group_incomplete``).
        RewardGroupError: the sample cannot be judged as configured (no prompt, a group of one).
        DeadRunError: ``max_dead_steps`` windows in a row carried (almost) no signal.
    """
    router = kwargs.get("reward_router_address")
    given = {k: v for k, v in kwargs.items() if k not in ROUTER_KWARGS}
    settings = settings_for(given)
    if router is not None:
        _say_once("router", "arrpo verl-omni reward: judging through %s; the reward router %s is not used",
                  settings.url, router, level=logging.INFO)
    member = await asyncio.to_thread(_member, settings, data_source, solution_image, ground_truth, dict(extra_info or {}))
    prompt, image = member.pop("prompt"), member.pop("image")
    try:
        answer = await _client(settings).group_member(prompt, image, **member)
    except RewardServiceError as exc:
        settings.monitor.observe(1, 1, {cause_of(f"service answered {exc.status} ({exc.code})"): 1})
        raise
    masked = 0 if answer.mask else 1
    if masked and settings.host_std == "batch":
        settings.monitor.observe(1, 1, {cause_of(answer.cause or "masked"): 1})
        raise RewardGroupError(batch_std_refusal(
            "verl_omni", 1, "each call holds one sample and the service one group, never the whole batch"))
    settings.monitor.observe(1, masked, {cause_of(answer.cause or "masked"): 1} if masked else {})
    value = answer.reward if settings.score == "reward" else answer.advantage
    return {"score": float(value), "arrpo_mask": float(answer.mask), "arrpo_group_masked": float(answer.masked)}
