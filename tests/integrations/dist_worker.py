"""One rank of a simulated Flow-GRPO run (spawned by test_distributed.py): gloo on CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from arrpo.integrations.flow_grpo import with_arrpo
from arrpo.integrations.groups import RewardGroupError
from tests.integrations.trainers import (
    flow_grpo_multi_score,
    flow_grpo_step,
    gray_pil,
    gray_tensor,
    k_repeat_batches,
)

BATCH, K = 4, 4
T2I_PROMPTS = [f"prompt {i}" for i in range(20)]
EDITS = [(f"edit {i % 5}", 20 + 10 * i) for i in range(20)]  # (instruction, source gray): instructions repeat


def gray_for(rank: int, j: int, iteration: int) -> int:
    return 10 + 7 * (rank * BATCH + j) + iteration


def run_rank(rank: int, world: int, init_file: str, url: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ["ARRPO_SERVICE_URL"] = url
    os.environ["ARRPO_REWARD_OPTIONS"] = json.dumps({"samples_per_prompt": K})
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    record: dict[str, object] = {}
    # multi_score is built on every rank in the main thread, as the train scripts do
    reward_fn = with_arrpo(flow_grpo_multi_score)("cpu", {"arrpo": 1.0})

    # t2i: m = 8 prompts x k = 4 fill one iteration of 8 ranks x 4: whole groups per call; each
    # iteration draws from its own ten prompts (a prompt drawn in both would have 2k samples in
    # flight, and which k form a group would depend on the order the ranks' calls pair up in)
    batches, rows = [], []
    for iteration in range(2):
        indices = k_repeat_batches(10, BATCH, K, 8, world, epoch=iteration)[0][rank]
        prompts = [T2I_PROMPTS[i + 10 * iteration] for i in indices]
        grays = [gray_for(rank, j, iteration) for j in range(BATCH)]
        batches.append((gray_tensor(grays), prompts, [{} for _ in prompts], None))
        rows += [{"iteration": iteration, "prompt": p, "gray": g} for p, g in zip(prompts, grays, strict=True)]
    rewards = flow_grpo_step(reward_fn, batches)
    record["t2i"] = [dict(row, reward=float(r)) for row, r in zip(rows, rewards["avg"], strict=True)]

    # Kontext: the source image goes 4th; groups are keyed by instruction and source image
    indices = k_repeat_batches(len(EDITS), BATCH, K, 8, world, epoch=7)[0][rank]
    prompts = [EDITS[i][0] for i in indices]
    sources = [EDITS[i][1] for i in indices]
    grays = [gray_for(rank, j, 0) for j in range(BATCH)]
    batch = (gray_tensor(grays), prompts, [{} for _ in prompts], [gray_pil(s) for s in sources])
    rewards = flow_grpo_step(reward_fn, [batch], kontext=True)
    record["edit"] = [
        {"prompt": p, "source": s, "gray": g, "reward": float(r)}
        for p, s, g, r in zip(prompts, sources, grays, rewards["avg"], strict=True)
    ]

    # m = 16 prompts need two iterations: a group's copies arrive in both calls and are assembled
    spread = k_repeat_batches(len(T2I_PROMPTS), BATCH, K, 16, world, epoch=3)
    batches, rows = [], []
    for number, it in enumerate(spread):
        prompts = [T2I_PROMPTS[i] for i in it[rank]]
        grays = [gray_for(rank, j, 0) + 3 * number for j in range(BATCH)]  # distinct over both calls
        batches.append((gray_tensor(grays), prompts, [{}] * BATCH, None))
        rows += [{"prompt": p, "gray": g} for p, g in zip(prompts, grays, strict=True)]
    rewards = flow_grpo_step(reward_fn, batches)
    record["spread"] = [dict(row, reward=float(r)) for row, r in zip(rows, rewards["avg"], strict=True)]
    # an epoch cut short: its groups are fragments, refused on every rank
    os.environ["ARRPO_REWARD_OPTIONS"] = json.dumps({"samples_per_prompt": K, "idle_timeout": 1.0})
    short = with_arrpo(flow_grpo_multi_score)("cpu", {"arrpo": 1.0})
    first = k_repeat_batches(len(T2I_PROMPTS), BATCH, K, 16, world, epoch=4)[0]
    try:
        flow_grpo_step(short, [(gray_tensor([gray_for(rank, j, 0) for j in range(BATCH)]),
                                [T2I_PROMPTS[i] for i in first[rank]], [{}] * BATCH, None)])
        record["fragments"] = "scored"
    except RewardGroupError as exc:
        record["fragments"] = str(exc)
    record["stats"] = reward_fn.arrpo.stats
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()
