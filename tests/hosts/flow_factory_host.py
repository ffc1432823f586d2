"""Flow-Factory as its own code runs a groupwise reward, re-written from its sources for these tests.

Behaviour (not code) of ``models/samples.py`` (``T2ISample`` / ``I2ISample``, attribute lookup and
``unique_id``), ``utils/dist.py`` (``gather_samples``), ``rewards/reward_processor.py``
(``RewardProcessor`` distributed and local groupwise paths, the newest ``RewardBuffer`` with a
``num_workers`` thread pool and ``finalize``) and ``advantage/advantage_processor.py`` (weighted
sum and GDPO). Ranks are simulated in one process: what each rank would hold is a list. Facts in
/work/notes/hosts.md.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from PIL import Image


# --------------------------------------------------------------------------------- samples
@dataclass
class BaseSample:
    """A sample: media as tensors (C, H, W) in [0, 1]; unknown attributes come from
    ``extra_kwargs`` or raise ``AttributeError("'<Class>' has no attribute '<name>'")``."""

    image: Any = None
    prompt: str | None = None
    extra_kwargs: dict = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            extra = object.__getattribute__(self, "extra_kwargs")
        except AttributeError:
            raise AttributeError(f"'{type(self).__name__}' has no attribute '{key}'") from None
        if key in extra:
            return extra[key]
        raise AttributeError(f"'{type(self).__name__}' has no attribute '{key}'")

    def keys(self):
        names = [f.name for f in fields(self) if f.name != "extra_kwargs"]
        return [*names, *self.extra_kwargs]

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __iter__(self):
        return iter(self.keys())

    def _hash_parts(self) -> list[bytes]:
        return [self.prompt.encode()]

    @property
    def unique_id(self) -> int:
        digest = hashlib.sha256(b"".join(self._hash_parts())).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class T2ISample(BaseSample):
    """Text-to-image: no ``condition_images`` field."""


@dataclass
class I2ISample(BaseSample):
    """Image-conditioned: ``condition_images`` (a list of tensors), hashed into ``unique_id``."""

    condition_images: Any = None

    def _hash_parts(self) -> list[bytes]:
        return [self.prompt.encode(), *(t.numpy().tobytes() for t in self.condition_images or [])]


def tensor_image(gray: int, size: int = 8) -> torch.Tensor:
    return torch.full((3, size, size), gray / 255.0)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    array = (tensor.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array)


# ------------------------------------------------------------------------ reward processor
def filter_kwargs(fn, **fields_: Any) -> dict[str, Any]:
    names = set(inspect.signature(fn).parameters)
    return {k: v for k, v in fields_.items() if k in names}


def _media_to_pil(model, group_input: dict[str, Any]) -> dict[str, Any]:
    if getattr(model, "use_tensor_inputs", False):
        return group_input
    out = dict(group_input)
    if "image" in out:
        out["image"] = [to_pil(t) for t in out["image"]]
    if "condition_images" in out:
        out["condition_images"] = [[to_pil(t) for t in conditions] for conditions in out["condition_images"]]
    return out


def compute_group(model, group: list[BaseSample]) -> torch.Tensor:
    """One group: the declared arguments every sample has (not None), media as PIL, ``.rewards``."""
    declared = filter_kwargs(model.__call__, **{k: group[0][k] for k in group[0]})
    group_input = {k: [getattr(s, k) for s in group] for k in declared if all(getattr(s, k) is not None for s in group)}
    output = model(**_media_to_pil(model, group_input))
    return torch.as_tensor(getattr(output, "rewards", output), dtype=torch.float32)


def gather_samples(rank_samples: list[list[BaseSample]], field_names: list[str]) -> list[BaseSample]:
    """Every rank's samples with only ``field_names`` (read with ``getattr``), rank order."""
    out = []
    for samples in rank_samples:
        for sample in samples:
            values = {name: getattr(sample, name) for name in sorted(field_names)}
            out.append(type(sample)(**values))
    return out


def groupwise_distributed(model, rank_samples: list[list[BaseSample]]) -> list[torch.Tensor]:
    """``distributed_k_repeat``: gather the union of ``required_fields``, group by ``unique_id``,
    group g on rank g % W, all-reduce, scatter back."""
    world = len(rank_samples)
    gathered = gather_samples(rank_samples, list(set(model.required_fields)))
    ids = np.array([s.unique_id for s in gathered])
    unique, inverse = np.unique(ids, return_inverse=True)
    rewards = torch.zeros(len(gathered))
    for group_index in range(len(unique)):  # every rank's share, in one process
        members = np.nonzero(inverse == group_index)[0]
        rewards[members] = compute_group(model, [gathered[i] for i in members])
    return list(rewards.chunk(world))


def groupwise_local(model, samples: list[BaseSample]) -> torch.Tensor:
    """``group_contiguous``: the k copies are on this rank; group locally, no gather."""
    ids = np.array([s.unique_id for s in samples])
    unique, inverse = np.unique(ids, return_inverse=True)
    rewards = torch.zeros(len(samples))
    for group_index in range(len(unique)):
        members = np.nonzero(inverse == group_index)[0]
        rewards[members] = compute_group(model, [samples[i] for i in members])
    return rewards


class RewardBuffer:
    """The newest ``RewardBuffer`` for one async groupwise reward: a thread pool of
    ``num_workers``; ``add_samples`` submits each group as soon as its ``group_size`` samples are
    in; ``finalize`` collects every future (a worker's exception is raised there, as itself),
    requires every group complete and stacks the rewards in sample order."""

    def __init__(self, model, group_size: int, num_workers: int):
        self.model = model
        self.group_size = group_size
        self.uses_cuda = model.device.type == "cuda"  # read for every async reward
        self.samples: list[BaseSample] = []
        self.rewards: list[torch.Tensor | None] = []
        self.pending: dict[int, list[int]] = defaultdict(list)
        self.executor = ThreadPoolExecutor(max_workers=max(1, num_workers))
        self.futures: list[tuple[list[int], Any]] = []
        self.threads: set[str] = set()

    def _task(self, group: list[BaseSample]) -> torch.Tensor:
        self.threads.add(threading.current_thread().name)
        return compute_group(self.model, group)

    def add_samples(self, samples: list[BaseSample]) -> None:
        start = len(self.samples)
        self.samples += samples
        self.rewards += [None] * len(samples)
        for index, sample in enumerate(samples, start):
            self.pending[sample.unique_id].append(index)
        for uid, indices in list(self.pending.items()):
            if len(indices) >= self.group_size:
                group = [self.samples[i] for i in indices]
                self.futures.append((list(indices), self.executor.submit(self._task, group)))
                del self.pending[uid]

    def finalize(self) -> torch.Tensor:
        try:
            for indices, future in self.futures:
                values = future.result()
                for position, index in enumerate(indices):
                    self.rewards[index] = values[position]
            assert not self.pending, f"Incomplete groups remaining: {list(self.pending)}"
            return torch.stack(self.rewards)  # type: ignore[arg-type]
        finally:
            self.executor.shutdown(wait=True)


# ------------------------------------------------------------------------ advantage processor
def group_indices(samples: list[BaseSample]) -> np.ndarray:
    return np.unique(np.array([s.unique_id for s in samples]), return_inverse=True)[1]


def weighted_sum_advantages(rewards: np.ndarray, groups: np.ndarray, *, global_std: bool) -> np.ndarray:
    """``sum``: per group ``(r − mean)/std``, std over all samples (``global_std``) or the
    group's, each at least 1e-6."""
    rewards = np.asarray(rewards, dtype=np.float64)
    adv = np.zeros_like(rewards)
    batch_std = max(float(np.std(rewards)), 1e-6)
    for g in np.unique(groups):
        members = groups == g
        std = batch_std if global_std else max(float(np.std(rewards[members])), 1e-6)
        adv[members] = (rewards[members] - np.mean(rewards[members])) / std
    return adv


def gdpo_advantages(rewards: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``gdpo`` for one reward of weight 1: per group z-score (std at least 1e-6), then batch
    normalisation of the combined values."""
    rewards = np.asarray(rewards, dtype=np.float64)
    combined = np.zeros_like(rewards)
    for g in np.unique(groups):
        members = groups == g
        combined[members] = (rewards[members] - np.mean(rewards[members])) / max(float(np.std(rewards[members])), 1e-6)
    return (combined - float(np.mean(combined))) / max(float(np.std(combined)), 1e-6)
