"""verl-omni as its own code scores a diffusion step, re-written from its sources for these tests.

Behaviour (not code) of verl's ``get_custom_reward_fn`` (the function loaded from a file, wrapped
so that ``reward_kwargs`` are merged into every call), verl-omni's ``VisualRewardManager.run_single``
(``uint8`` check, ``extra_info`` copied and extended, awaited when a coroutine function, else run in
the loop's default executor; dict or float results), verl's ``RewardLoopWorker`` (a Ray actor: one
process, one event loop, ``compute_score`` and ``compute_score_batch``), ``RewardLoopManager
.compute_rm_score`` (pad to a multiple of the workers with copies of the first samples, contiguous
chunks, drop the padding), ``DiffusionAgentLoopWorker._compute_score`` (streaming: each sample to
a random worker when its rollout ends), the trainer's ``uid`` and ``repeat(n, interleave=True)``,
and ``compute_flow_grpo_outcome_advantage``. Facts in /work/notes/hosts.md.

Workers are real processes (``spawn``), fed through pipes, as Ray actors would be.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import importlib.util
import inspect
import io
import itertools
import multiprocessing
import random
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from PIL import Image


# ------------------------------------------------------------------ verl: loading the function
def _merged_call(raw_fn, extra_kwargs, *args, **kwargs):
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


async def _merged_call_async(raw_fn, extra_kwargs, *args, **kwargs):
    return await raw_fn(*args, **{**kwargs, **extra_kwargs})


def load_custom_reward_fn(path: str, name: str, reward_kwargs: dict) -> Any:
    """``get_custom_reward_fn``: the object ``name`` of ``path`` (``pkg://`` module or file), with ``reward_kwargs``
    merged into every call (they win); a coroutine function stays one."""
    if path.startswith("pkg://"):  # verl's load_module: a package module, imported
        module = importlib.import_module(path.removeprefix("pkg://").replace("/", "."))
    else:  # a file, executed as a module of its own
        spec = importlib.util.spec_from_file_location("custom_module", path.removeprefix("file://"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    raw_fn = getattr(module, name)
    wrapper = _merged_call_async if inspect.iscoroutinefunction(raw_fn) else _merged_call
    return partial(wrapper, raw_fn, dict(reward_kwargs))


# ------------------------------------------------------------ verl-omni: the reward manager
class VisualRewardManager:
    """``run_single`` on one sample: ``responses`` a ``uint8`` tensor (for ``output_type`` image)."""

    def __init__(self, compute_score, loop, output_type: str = "image", router_address: str | None = None):
        self.compute_score = compute_score
        self.is_async = inspect.iscoroutinefunction(compute_score)
        self.loop = loop
        self.output_type = output_type
        self.router_address = router_address

    async def run_single(self, item: dict) -> dict:
        response = item["responses"]
        if self.output_type != "latent" and (not isinstance(response, torch.Tensor) or response.dtype != torch.uint8):
            raise ValueError(f"Expected uint8 pixel responses for output_type='image', got {getattr(response, 'dtype', type(response))}.")
        non_tensor = item["non_tensor"]
        extra_info = dict(non_tensor.get("extra_info") or {})
        extra_info.update(non_tensor.get("tool_extra_fields") or {})
        extra_info["num_turns"] = non_tensor.get("__num_turns__")
        extra_info["rollout_reward_scores"] = non_tensor.get("reward_scores", {})
        kwargs = dict(data_source=non_tensor["data_source"], solution_image=response,
                      ground_truth=non_tensor["reward_model"]["ground_truth"], extra_info=extra_info)
        if self.router_address is not None:
            kwargs.update(reward_router_address=self.router_address, reward_model_tokenizer=None,
                          model_name="judge-model", sampling_params={"max_tokens": 4096})
        if self.is_async:
            result = await self.compute_score(**kwargs)
        else:
            result = await self.loop.run_in_executor(None, lambda: self.compute_score(**kwargs))
        if isinstance(result, dict):
            return {"reward_score": result["score"], "reward_extra_info": {k: v for k, v in result.items() if k != "score"}}
        return {"reward_score": result, "reward_extra_info": {"acc": result}}


# --------------------------------------------------------------- verl: a reward-loop worker
def _worker_main(conn) -> None:
    """One reward-loop worker process: an event loop serving ``configure``, ``compute_score`` and
    ``compute_score_batch`` calls concurrently, as a Ray async actor does."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    state: dict[str, Any] = {}

    async def handle(call_id: int, method: str, payload: Any) -> None:
        try:
            if method == "configure":
                fn = load_custom_reward_fn(payload["path"], payload["name"], payload["reward_kwargs"])
                state["manager"] = VisualRewardManager(fn, loop, payload.get("output_type", "image"),
                                                       payload.get("router_address"))
                result: Any = True
            elif method == "compute_score":
                result = await state["manager"].run_single(payload)
            else:  # compute_score_batch: every sample of the chunk at once
                result = list(await asyncio.gather(*(state["manager"].run_single(item) for item in payload)))
            conn.send((call_id, True, result))
        except BaseException as exc:  # sent back as the caller's error, like ray.get
            conn.send((call_id, False, f"{type(exc).__name__}: {exc}"))

    async def serve() -> None:
        tasks = set()
        while True:
            message = await loop.run_in_executor(None, conn.recv)
            if message is None:
                break
            task = loop.create_task(handle(*message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    loop.run_until_complete(serve())


class WorkerError(RuntimeError):
    """A worker's call failed (the exception's type and message, as Ray re-raises them)."""


class RewardLoopWorker:
    """The driver's handle on one worker process: ``call`` returns a future."""

    def __init__(self, context):
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        self._ids = itertools.count()
        self._futures: dict[int, Future] = {}
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                call_id, ok, result = self._conn.recv()
            except (EOFError, OSError):
                return
            future = self._futures.pop(call_id)
            if ok:
                future.set_result(result)
            else:
                future.set_exception(WorkerError(result))

    def call(self, method: str, payload: Any) -> Future:
        future: Future = Future()
        call_id = next(self._ids)
        self._futures[call_id] = future
        with self._send_lock:
            self._conn.send((call_id, method, payload))
        return future

    def stop(self) -> None:
        with self._send_lock:
            self._conn.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


def start_workers(n: int) -> list[RewardLoopWorker]:
    return [RewardLoopWorker(multiprocessing.get_context("spawn")) for _ in range(n)]


def configure(workers: list[RewardLoopWorker], path: str, reward_kwargs: dict, **extra: Any) -> None:
    """Every worker loads ``compute_score`` from ``path`` with ``reward_kwargs`` (a new run)."""
    payload = {"path": path, "name": "compute_score", "reward_kwargs": reward_kwargs, **extra}
    for future in [w.call("configure", payload) for w in workers]:
        future.result(timeout=120)


# ------------------------------------------------------------------------- the trainer's batch
def uint8_image(gray: int, size: int = 8) -> torch.Tensor:
    """A rollout image as verl-omni holds it: ``uint8`` (C, H, W)."""
    return torch.full((3, size, size), gray, dtype=torch.uint8)


def png(gray: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (gray, gray, gray)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Row:
    """One dataset row: its prompt, the grays its n rollouts will have, and edit/validation data."""

    prompt: str
    grays: list[int]
    index: int
    source_gray: int | None = None
    split: str = "train"
    anchor_gray: int | None = None
    extra: dict = field(default_factory=dict)


def step_batch(rows: list[Row], data_source: str = "arrpo") -> list[dict]:
    """A step's samples: a uid per row, each row repeated n times contiguously (interleave)."""
    batch = []
    for row in rows:
        uid = str(uuid.uuid4())
        extra_info: dict[str, Any] = {"split": row.split, "index": row.index, "prompt": row.prompt, **row.extra}
        if row.source_gray is not None:
            extra_info["instruction"] = extra_info.pop("prompt")
            extra_info["source_img"] = {"bytes": png(row.source_gray), "path": None}
        if row.anchor_gray is not None:
            extra_info["anchor_image"] = {"bytes": png(row.anchor_gray)}
        for gray in row.grays:
            batch.append({
                "responses": uint8_image(gray), "gray": gray, "uid": uid,
                "non_tensor": {"data_source": data_source, "reward_model": {"ground_truth": row.prompt},
                               "extra_info": copy.deepcopy(extra_info), "uid": uid, "__num_turns__": 2,
                               "tool_extra_fields": {"prompt_embeds_shape": [1, 4]}},
            })
    return batch


# ---------------------------------------------------------------------------- the two paths
def streaming_scores(workers: list[RewardLoopWorker], batch: list[dict], seed: int = 0,
                     max_delay: float = 0.05) -> list[Any]:
    """Streaming reward: each sample, as its rollout ends (random order and times), is scored by a
    random worker; the outputs (or the errors) in batch order."""
    rng = random.Random(seed)
    order = list(range(len(batch)))
    rng.shuffle(order)
    futures: dict[int, Future] = {}
    for i in order:
        time.sleep(rng.uniform(0, max_delay))
        futures[i] = rng.choice(workers).call("compute_score", batch[i])
    return [_outcome(futures[i]) for i in range(len(batch))]


def pad_to_divisor(batch: list, divisor: int) -> tuple[list, int]:
    """``pad_dataproto_to_divisor``: append copies of the first samples until the size divides."""
    pad = (-len(batch)) % divisor
    padding = []
    while len(padding) < pad:
        padding += batch[: pad - len(padding)]
    return batch + padding, pad


def colocate_scores(workers: list[RewardLoopWorker], batch: list[dict]) -> list[Any]:
    """``compute_rm_score``: pad, cut into one contiguous chunk per worker, score every chunk at
    once, drop the padding."""
    padded, _ = pad_to_divisor(batch, len(workers))
    size = len(padded) // len(workers)
    futures = [w.call("compute_score_batch", padded[k * size:(k + 1) * size]) for k, w in enumerate(workers)]
    outputs: list[Any] = []
    for future in futures:
        result = _outcome(future)
        outputs += result if isinstance(result, list) else [result] * size
    return outputs[: len(batch)]


def _outcome(future: Future, timeout: float = 180.0) -> Any:
    try:
        return future.result(timeout=timeout)
    except WorkerError as exc:
        return exc


def rm_scores(outputs: list[dict]) -> torch.Tensor:
    """``assemble_rm_scores``: float32 ``(bs, 1)``; the extra-info arrays from the first sample's keys."""
    keys = list(outputs[0]["reward_extra_info"])
    _ = {k: np.array([o["reward_extra_info"][k] for o in outputs]) for k in keys}  # KeyError if keys differ
    return torch.tensor([o["reward_score"] for o in outputs], dtype=torch.float32).unsqueeze(-1)


# ------------------------------------------------------------------------------ advantages
def flow_grpo_outcome_advantage(scores: torch.Tensor, index: np.ndarray, epsilon: float = 1e-4,
                                norm_adv_by_std_in_grpo: bool = True, global_std: bool = True) -> torch.Tensor:
    """``compute_flow_grpo_outcome_advantage``: per ``index`` (uid) centring, divided by the
    batch's std (``global_std``) or the group's, plus ``epsilon``."""
    scores = scores.clone()
    by_id: dict[Any, list[torch.Tensor]] = defaultdict(list)
    with torch.no_grad():
        batch_std = torch.std(scores) if global_std else None
        for i in range(scores.shape[0]):
            by_id[index[i]].append(scores[i])
        mean, std = {}, {}
        for idx, values in by_id.items():
            if len(values) == 1:
                mean[idx] = values[0]
                std[idx] = batch_std if global_std else torch.tensor(1.0)
            else:
                stacked = torch.stack(values)
                mean[idx] = torch.mean(stacked)
                std[idx] = batch_std if global_std else torch.std(stacked)
        for i in range(scores.shape[0]):
            centred = scores[i] - mean[index[i]]
            scores[i] = centred / (std[index[i]] + epsilon) if norm_adv_by_std_in_grpo else centred
    return scores
