"""How the trainers call a reward, reproduced from reading their sources (for the adapter tests).

Each function mirrors one trainer's call site: the argument types and shapes it passes, how it
groups samples over ranks, and how it consumes the result. Nothing here is copied; it is
re-written to the behaviour described in ``docs/serving.md``.
"""

from __future__ import annotations

import inspect
import math
import time
from concurrent import futures
from typing import Any

import torch
from PIL import Image


# ----------------------------------------------------------------------------- images
def gray_tensor(values: list[int], size: int = 8) -> torch.Tensor:
    """A decoded batch as diffusers pipelines return it with output_type="pt": NCHW float in [0, 1]."""
    return torch.stack([torch.full((3, size, size), v / 255.0) for v in values])


def gray_pil(value: int, size: int = 8) -> Image.Image:
    return Image.new("RGB", (size, size), (value, value, value))


# ----------------------------------------------------------------------------- Flow-GRPO
def flow_grpo_multi_score(device: Any, score_dict: dict[str, float]):
    """Flow-GRPO's ``multi_score`` shape: builds each named scorer (with ``device`` when its
    factory takes one), sums weighted scores into ``"avg"``, returns ``(details, {})``."""

    def jpeg_size():  # a stand-in scorer without a device argument
        def _fn(images, prompts, metadata):
            return [float(img.mean()) for img in images], {}

        return _fn

    registry = {"jpeg_size": jpeg_size}
    fns = {
        name: registry[name](device) if "device" in registry[name].__code__.co_varnames else registry[name]()
        for name in score_dict
    }

    def _fn(images, prompts, metadata, ref_images=None, only_strict=True):
        details, total = {}, None
        for name, weight in score_dict.items():
            scores, _ = fns[name](images, prompts, metadata)
            details[name] = scores
            weighted = [weight * s for s in scores]
            total = weighted if total is None else [a + b for a, b in zip(total, weighted, strict=True)]
        details["avg"] = total
        return details, {}

    return _fn


def k_repeat_batches(n_prompts: int, batch_size: int, k: int, m: int, replicas: int, epoch: int, seed: int = 42):
    """``DistributedKRepeatSampler``: every rank draws the same permutation; m prompts each
    repeated k times are shuffled and dealt out, ``batch_size`` consecutive indices per rank per
    iteration. Returns ``batches[iteration][rank] -> dataset indices``."""
    per_iteration = replicas * batch_size
    per_epoch = math.lcm(k * m, per_iteration)
    m = per_epoch // k
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    chosen = torch.randperm(n_prompts, generator=g)[:m].tolist()
    repeated = [idx for idx in chosen for _ in range(k)]
    order = torch.randperm(len(repeated), generator=g).tolist()
    shuffled = [repeated[i] for i in order]
    return [
        [shuffled[it * per_iteration + r * batch_size: it * per_iteration + (r + 1) * batch_size] for r in range(replicas)]
        for it in range(per_epoch // per_iteration)
    ]


def flow_grpo_step(
    reward_fn, batches: list[tuple], kontext: bool = False, sampling_seconds: float = 0.05,
) -> dict[str, torch.Tensor]:
    """One sampling epoch of Flow-GRPO's train loop on one rank: each batch is sampled (here: a
    short wait standing for the diffusion sampling), its reward submitted to a thread pool
    (followed by ``time.sleep(0)`` so the call starts), all awaited after sampling, turned into
    tensors per key and concatenated."""
    executor = futures.ThreadPoolExecutor(max_workers=8)
    pending = []
    for images, prompts, metadata, ref_images in batches:
        time.sleep(sampling_seconds)
        if kontext:
            pending.append(executor.submit(reward_fn, images, prompts, metadata, ref_images, only_strict=True))
        else:
            pending.append(executor.submit(reward_fn, images, prompts, metadata, only_strict=True))
        time.sleep(0)
    collected = []
    for future in pending:
        rewards, _reward_metadata = future.result()
        collected.append({key: torch.as_tensor(value).float() for key, value in rewards.items()})
    executor.shutdown()
    return {key: torch.cat([c[key] for c in collected]) for key in collected[0]}


# ----------------------------------------------------------------------------- Flow-Factory
def filter_kwargs(fn, **fields):
    """Only the fields ``fn`` declares."""
    names = set(inspect.signature(fn).parameters)
    return {k: v for k, v in fields.items() if k in names}


def flow_factory_groupwise(model, rank_samples: list[list[dict]]) -> list[torch.Tensor]:
    """``RewardProcessor``'s groupwise path over simulated ranks: gather only ``required_fields``
    (plus the group id), group by id, give group g to rank g % world, pass the declared arguments
    that every sample of the group has, media as PIL, read ``.rewards``; scatter back."""
    world = len(rank_samples)
    fields = set(model.required_fields) | {"unique_id"}
    gathered = [{k: v for k, v in s.items() if k in fields} for samples in rank_samples for s in samples]
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(gathered):
        groups.setdefault(s["unique_id"], []).append(i)
    rewards = torch.zeros(len(gathered))
    for g, (_uid, members) in enumerate(groups.items()):
        _computed_on_rank = g % world
        declared = filter_kwargs(model.__call__, **gathered[members[0]])
        group_input = {
            k: [gathered[i][k] for i in members] for k in declared
            if all(gathered[i].get(k) is not None for i in members)
        }
        output = model(**group_input)
        rewards[members] = torch.as_tensor(output.rewards, dtype=torch.float32)
    return list(rewards.chunk(world))


def flow_factory_async_rewards(model, batches: list[list[dict]], group_size: int,
                               on_sampled=None) -> torch.Tensor:
    """Flow-Factory's ``RewardBuffer`` with ``async_reward`` on one rank (its sampler keeps each
    group's k samples on the same rank, so nothing is gathered): the buffer first reads every
    reward's ``.device.type``; batches are added as they are sampled; as soon as all k samples of
    a ``unique_id`` are in, that group is queued; one daemon thread takes the queue in order and
    computes each group (the declared arguments every sample of the group has, media as PIL,
    ``model(**input)``, ``torch.as_tensor(.rewards, cpu, float32)`` stored per sample) while the
    main thread goes on sampling (``on_sampled(batch_number)`` stands for that work). A worker
    error stops the thread and is raised as ``RuntimeError`` chained to it at the next batch or at
    the end; the end also requires every group complete and stacks the rewards in sample order."""
    import queue
    import threading

    needs_cuda_stream = model.device.type == "cuda"  # read for every reward before anything runs
    assert not needs_cuda_stream, "the stand-in has no CUDA: give the reward a CPU accelerator"
    samples: list[dict] = []
    rewards: list[torch.Tensor | None] = []
    waiting: dict[Any, list[int]] = {}
    tasks: queue.Queue = queue.Queue()
    failure: list[BaseException] = []
    model.calls_on = []

    def work() -> None:
        try:
            while (task := tasks.get()) is not None:
                indices = task
                group = [samples[i] for i in indices]
                model.calls_on.append(threading.current_thread().name)
                declared = filter_kwargs(model.__call__, **group[0])
                group_input = {k: [s[k] for s in group] for k in declared
                               if all(s.get(k) is not None for s in group)}
                output = model(**group_input)
                values = torch.as_tensor(getattr(output, "rewards", output), device="cpu", dtype=torch.float32)
                for position, index in enumerate(indices):
                    rewards[index] = values[position]
        except Exception as exc:  # kept, raised on the main thread
            failure.append(exc)

    def raise_failure() -> None:
        if failure:
            raise RuntimeError("RewardBuffer worker thread failed") from failure[0]

    worker = threading.Thread(target=work, name="reward-buffer-worker", daemon=True)
    worker.start()
    for number, batch in enumerate(batches):
        raise_failure()
        start = len(samples)
        samples.extend(batch)
        rewards.extend([None] * len(batch))
        for index, sample in enumerate(batch, start):
            waiting.setdefault(sample["unique_id"], []).append(index)
        for uid, indices in list(waiting.items()):
            if len(indices) >= group_size:
                tasks.put(list(indices))
                del waiting[uid]
        if on_sampled is not None:
            on_sampled(number)
    tasks.put(None)
    worker.join()
    raise_failure()
    assert not waiting, f"incomplete groups: {list(waiting)}"
    assert all(r is not None for r in rewards)
    return torch.stack(rewards)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- DanceGRPO
def dance_grpo_rollout(score_one, captions: list[str], num_generations: int, decode, sources=None):
    """DanceGRPO's sampling on one rank: prompts repeated ``num_generations`` times contiguously,
    one image decoded and scored at a time, scores concatenated, advantages per chunk."""
    repeated = [c for c in captions for _ in range(num_generations)]
    repeated_sources = [s for s in sources for _ in range(num_generations)] if sources else None
    all_rewards = []
    for index, caption in enumerate(repeated):
        image = decode(index)  # (1, C, H, W) in [0, 1]
        if repeated_sources:
            all_rewards.append(score_one(image, caption, repeated_sources[index]))
        else:
            all_rewards.append(score_one(image, caption))
    rewards = torch.cat(all_rewards, dim=0)
    advantages = torch.zeros_like(rewards)
    for i in range(len(rewards) // num_generations):
        chunk = rewards[i * num_generations:(i + 1) * num_generations]
        advantages[i * num_generations:(i + 1) * num_generations] = (chunk - chunk.mean()) / (chunk.std() + 1e-8)
    return rewards, advantages


# ----------------------------------------------------------------------------- judges
def closest_to_source_wins(request):
    """A scripted edit judge: the candidate whose brightness is nearer the source image's wins."""
    import json

    from arrpo.testing.scripted_server import Reply
    from tests.serve.helpers import brightness

    source, first, second = (brightness(image) for image in request.images()[-3:])
    rank = [1, 2] if abs(first - source) <= abs(second - source) else [2, 1]
    return Reply(text=json.dumps({"rank": rank, "reason": "closer to the source"}))
