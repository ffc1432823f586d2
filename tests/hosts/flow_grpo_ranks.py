"""One rank of a Flow-GRPO run on gloo (spawned by test_flow_grpo_ranks.py).

Each scenario builds its samples from Flow-GRPO's samplers (flow_grpo_host.py), runs the train
loop's sampling epoch and writes what this rank saw and got to ``rank{r}.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from arrpo.integrations.flow_grpo import with_arrpo
from arrpo.integrations.groups import RewardGroupError
from tests.hosts import flow_grpo_host as host
from tests.integrations.trainers import gray_tensor

PROMPTS = [f"prompt {i}" for i in range(12)]


def gray_of(prompt_index: int, copy: int) -> int:
    """Distinct within a prompt's group: 16 copies over 5..245."""
    return 5 + 15 * copy + prompt_index % 7


def build(iterations, rank: int, group_per_iteration: bool = False) -> tuple[list, list]:
    """Per iteration: this rank's batch; the copy number of each sample counts over ranks and
    iterations in dealing order, so every sample of a group has a distinct gray. With
    ``group_per_iteration`` iteration e draws from its own six prompts (6e .. 6e+5), so that no
    prompt has two groups in one epoch (which of its 2k samples form a group would then depend on
    the order the ranks' calls pair up in, a choice of no consequence to the host)."""
    seen: dict[int, int] = {}
    batches, rows = [], []
    for number, it in enumerate(iterations):
        if group_per_iteration:
            it = [[index + 6 * number for index in indices] for indices in it]
        for r, indices in enumerate(it):
            mine = []
            for index in indices:
                copy = seen.get(index, 0)
                seen[index] = copy + 1
                mine.append((index, gray_of(index, copy)))
            if r == rank:
                prompts = [PROMPTS[i] for i, _ in mine]
                grays = [g for _, g in mine]
                batches.append((gray_tensor(grays), prompts, [{} for _ in prompts], None))
                rows += [{"prompt": p, "gray": g, "group": f"{p}@{number if group_per_iteration else 0}"}
                         for p, g in zip(prompts, grays, strict=True)]
    return batches, rows


def run_rank(rank: int, world: int, init_file: str, url: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ["ARRPO_SERVICE_URL"] = url
    os.environ["ARRPO_REWARD_OPTIONS"] = json.dumps({"samples_per_prompt": 16, "idle_timeout": 2.0})
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    record: dict[str, object] = {}
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})

    # the new sampler: k = 16 over two iterations of 8 samples (all ranks together)
    spread = host.new_sampler_epoch(len(PROMPTS), batch=8 // world, k=16, m=1, ranks=world, epoch=0)
    batches, rows = build(spread, rank)
    rewards = host.sample_epoch(reward_fn, batches)
    record["spread"] = [dict(row, reward=float(v)) for row, v in zip(rows, rewards["avg"], strict=True)]

    # the old sampler: two groups of 16 in one iteration of 32 samples
    whole = [host.old_sampler_iteration(6, batch=32 // world, k=16, ranks=world, seed_epoch=e) for e in range(2)]
    batches, rows = build(whole, rank, group_per_iteration=True)
    rewards = host.sample_epoch(reward_fn, batches)
    record["whole"] = [dict(row, reward=float(v)) for row, v in zip(rows, rewards["avg"], strict=True)]

    # an epoch that ends with a group of 16 half sampled: every rank refuses it
    half = host.new_sampler_epoch(len(PROMPTS), batch=8 // world, k=16, m=1, ranks=world, epoch=5)[:1]
    batches, _ = build(half, rank)
    try:
        host.sample_epoch(reward_fn, batches)
        record["fragment"] = "scored"
    except RewardGroupError as exc:
        record["fragment"] = str(exc)
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()


#: The masked scenario: 4 prompts × k = 8, one iteration of 32 samples; prompt 2's group is masked.
MASKED_K, MASKED_PROMPTS = 8, 4


def masked_gray(prompt_index: int, copy: int) -> int:
    """Distinct over the whole epoch: prompt i's copies are 10 + i, 40 + i, …, 220 + i."""
    return 10 + 30 * copy + prompt_index


def run_rank_masked(rank: int, world: int, init_file: str, url: str, out_dir: str) -> None:
    """Flow-GRPO's default ``global_std=True`` with one group masked: this rank's rows and the
    advantages Flow-GRPO's own tracker gives them (gathered over ranks, as the train script does)."""
    torch.set_num_threads(1)
    os.environ["ARRPO_SERVICE_URL"] = url
    os.environ["ARRPO_REWARD_OPTIONS"] = json.dumps({"samples_per_prompt": MASKED_K, "idle_timeout": 1.0})
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
    dealt = host.old_sampler_iteration(MASKED_PROMPTS, batch=MASKED_PROMPTS * MASKED_K // world, k=MASKED_K,
                                       ranks=world, seed_epoch=0)
    seen: dict[int, int] = {}
    mine = []
    for r, indices in enumerate(dealt):
        for index in indices:
            copy = seen.get(index, 0)
            seen[index] = copy + 1
            if r == rank:
                mine.append((index, masked_gray(index, copy)))
    half = len(mine) // 2  # two sampling batches per rank: groups complete across batches and ranks
    batches = [(gray_tensor([g for _, g in part]), [PROMPTS[i] for i, _ in part], [{} for _ in part], None)
               for part in (mine[:half], mine[half:])]
    rewards = host.sample_epoch(reward_fn, batches)
    prompts = [PROMPTS[i] for i, _ in mine]
    adv = host.advantages(prompts, rewards["avg"], global_std=True, world=world, rank=rank)
    record = [{"prompt": p, "gray": g, "avg": float(v), "advantage": [float(a) for a in row]}
              for (_, g), p, v, row in zip(mine, prompts, rewards["avg"], adv, strict=True)]
    Path(out_dir, f"masked{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()
