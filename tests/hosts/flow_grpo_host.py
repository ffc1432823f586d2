"""Flow-GRPO as its own code runs a reward, re-written from its sources for these tests.

Behaviour (not code) of ``flow_grpo/rewards.py`` (``multi_score``, ``jpeg_compressibility``),
``flow_grpo/stat_tracking.py`` (``PerPromptStatTracker``), ``flow_grpo/sampler.py`` and the old
sampler in ``scripts/train_sd3.py``, and the sampling, advantage and eval parts of the train
scripts. The facts behind each function are listed in /work/notes/hosts.md.
"""

from __future__ import annotations

import io
import math
import time
from collections import defaultdict
from concurrent import futures
from typing import Any

import numpy as np
import torch
from PIL import Image

#: Flow-GRPO's executor for reward calls (``ThreadPoolExecutor(max_workers=8)``).
EXECUTOR_WORKERS = 8
#: The value its eval logging leaves out of a reward's mean.
NO_VALUE = -10


# ------------------------------------------------------------------------------- rewards.py
def jpeg_compressibility():
    """No device argument; NCHW float [0, 1] → uint8 HWC → JPEG (quality 95), −kB/500."""

    def _fn(images, prompts, metadata):
        if isinstance(images, torch.Tensor):
            images = (images * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy().transpose(0, 2, 3, 1)
        sizes = []
        for array in images:
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="JPEG", quality=95)
            sizes.append(buffer.tell() / 1000)
        return -np.array(sizes) / 500, {}

    return _fn


SCORE_FUNCTIONS: dict[str, Any] = {"jpeg_compressibility": jpeg_compressibility}


def _build(device, score_dict):
    # a factory gets the device when its code names a `device` variable, as multi_score decides
    return {
        name: SCORE_FUNCTIONS[name](device) if "device" in SCORE_FUNCTIONS[name].__code__.co_varnames
        else SCORE_FUNCTIONS[name]()
        for name in score_dict
    }


def _weighted(score_fns, score_dict, images, prompts, metadata):
    details, total = {}, []
    for name, weight in score_dict.items():
        scores, _ = score_fns[name](images, prompts, metadata)
        details[name] = scores
        weighted = [weight * s for s in scores]
        total = weighted if not total else [a + b for a, b in zip(total, weighted)]  # noqa: B905 - as the host
    details["avg"] = total
    return details, {}


def released_multi_score(device, score_dict):
    """The released ``multi_score``: ``_fn(images, prompts, metadata, only_strict=True)``."""
    score_fns = _build(device, score_dict)

    def _fn(images, prompts, metadata, only_strict=True):
        return _weighted(score_fns, score_dict, images, prompts, metadata)

    return _fn


def current_multi_score(device, score_dict):
    """The newer ``multi_score`` (Kontext): ``_fn(images, prompts, metadata, ref_images=None, only_strict=True)``."""
    score_fns = _build(device, score_dict)

    def _fn(images, prompts, metadata, ref_images=None, only_strict=True):
        return _weighted(score_fns, score_dict, images, prompts, metadata)

    return _fn


# ---------------------------------------------------------------------------- stat_tracking.py
class PerPromptStatTracker:
    """The ``grpo`` advantage: per prompt text, ``(r − mean)/(std + 1e-4)``; the mean over the
    prompt's rewards, the std the prompt's own or (``global_std``) that of every reward given."""

    def __init__(self, global_std: bool = False):
        self.global_std = global_std
        self.stats: dict[str, Any] = {}

    def update(self, prompts, rewards):
        prompts = np.array(prompts)
        rewards = np.array(rewards, dtype=np.float64)
        with np.errstate(invalid="ignore"):  # as Flow-GRPO: uninitialised memory times 0, every row set below
            advantages = np.empty_like(rewards) * 0.0
        for prompt in np.unique(prompts):
            self.stats.setdefault(prompt, []).extend(rewards[prompts == prompt])
        for prompt in np.unique(prompts):
            history = np.stack(self.stats[prompt])
            mean = np.mean(history, axis=0, keepdims=True)
            spread = rewards if self.global_std else history
            std = np.std(spread, axis=0, keepdims=True) + 1e-4
            advantages[prompts == prompt] = (rewards[prompts == prompt] - mean) / std
        return advantages

    def clear(self):
        self.stats = {}


# ------------------------------------------------------------------------------------ samplers
def old_sampler_iteration(n_prompts: int, batch: int, k: int, ranks: int, seed_epoch: int) -> list[list[int]]:
    """Old ``DistributedKRepeatSampler``: one iteration, k | ranks·batch; per rank indices."""
    total = ranks * batch
    assert total % k == 0
    g = torch.Generator()
    g.manual_seed(42 + seed_epoch)
    chosen = torch.randperm(n_prompts, generator=g)[: total // k].tolist()
    repeated = [i for i in chosen for _ in range(k)]
    order = torch.randperm(len(repeated), generator=g).tolist()
    dealt = [repeated[i] for i in order]
    return [dealt[r * batch:(r + 1) * batch] for r in range(ranks)]


def new_sampler_epoch(n_prompts: int, batch: int, k: int, m: int, ranks: int, epoch: int) -> list[list[list[int]]]:
    """``flow_grpo/sampler.py``: lcm(k·m, ranks·batch) samples per epoch dealt over all batches and
    ranks; returns ``[iteration][rank] -> indices``."""
    per_iteration = ranks * batch
    per_epoch = math.lcm(k * m, per_iteration)
    m = per_epoch // k
    g = torch.Generator()
    g.manual_seed(42 + epoch)
    chosen = torch.randperm(n_prompts, generator=g)[:m].tolist()
    repeated = [i for i in chosen for _ in range(k)]
    order = torch.randperm(len(repeated), generator=g).tolist()
    dealt = [repeated[i] for i in order]
    return [
        [dealt[it * per_iteration + r * batch: it * per_iteration + (r + 1) * batch] for r in range(ranks)]
        for it in range(per_epoch // per_iteration)
    ]


# ------------------------------------------------------------------------------ train scripts
def sample_epoch(reward_fn, batches, *, kontext: bool = False, sampling_seconds: float = 0.0) -> dict[str, torch.Tensor]:
    """One rank's sampling: per batch the reward is submitted to the 8-worker pool (then
    ``time.sleep(0)``), all futures are resolved after the last batch, every value becomes a float32
    tensor, batches are concatenated."""
    executor = futures.ThreadPoolExecutor(max_workers=EXECUTOR_WORKERS)
    pending = []
    try:
        for images, prompts, metadata, ref_images in batches:
            time.sleep(sampling_seconds)  # the diffusion sampling of this batch
            if kontext:
                pending.append(executor.submit(reward_fn, images, prompts, metadata, ref_images, only_strict=True))
            else:
                pending.append(executor.submit(reward_fn, images, prompts, metadata, only_strict=True))
            time.sleep(0)
        collected = []
        for future in pending:
            rewards, _reward_metadata = future.result()
            collected.append({key: torch.as_tensor(value).float() for key, value in rewards.items()})
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return {key: torch.cat([c[key] for c in collected]) for key in collected[0]}


def gather(values: list, world: int) -> list:
    """``accelerator.gather`` of per-rank values (rank order)."""
    if world == 1:
        return list(values)
    import torch.distributed as dist

    parts: list = [None] * world
    dist.all_gather_object(parts, list(values))
    return [v for part in parts for v in part]


def advantages(prompts: list[str], avg: torch.Tensor, *, global_std: bool, world: int = 1, rank: int = 0,
               timesteps: int = 2) -> np.ndarray:
    """The train script's advantage step: ``avg`` repeated over timesteps, gathered with the
    prompts, ``PerPromptStatTracker.update``, this rank's rows back. Returns (local n, timesteps)."""
    repeated = avg.unsqueeze(1).repeat(1, timesteps).numpy()
    all_rewards = np.array(gather([row.tolist() for row in repeated], world), dtype=np.float32)
    all_prompts = gather(list(prompts), world)
    tracker = PerPromptStatTracker(global_std)
    adv = tracker.update(all_prompts, all_rewards)
    tracker.clear()
    return adv.reshape(world, -1, timesteps)[rank]


def evaluate(eval_reward_fn, batches, world: int = 1, kontext: bool = False) -> dict[str, float]:
    """``eval()``: each test batch (distinct prompts) submitted with ``only_strict=False`` and
    resolved at once; per key the mean over values other than −10, as logged."""
    import warnings

    executor = futures.ThreadPoolExecutor(max_workers=EXECUTOR_WORKERS)
    collected: dict[str, list] = defaultdict(list)
    try:
        for images, prompts, metadata, ref_images in batches:
            if kontext:
                future = executor.submit(eval_reward_fn, images, prompts, metadata, ref_images, only_strict=False)
            else:
                future = executor.submit(eval_reward_fn, images, prompts, metadata, only_strict=False)
            time.sleep(0)
            rewards, _ = future.result()
            for key, value in rewards.items():
                collected[key] += gather(torch.as_tensor(value).float().tolist(), world)
    finally:
        executor.shutdown(wait=True)
    means = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of nothing is NaN, as logged
        for key, values in collected.items():
            array = np.array(values)
            means[key] = float(np.mean(array[array != NO_VALUE]))
    return means
