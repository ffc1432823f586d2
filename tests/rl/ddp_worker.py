"""One rank of the two-process CPU DDP tests (gloo, launched by ``test_ddp.py`` with the env vars
``accelerate launch`` would set): trains a tiny SD3 policy on this rank's prompts and saves its state.

Usage: ``python ddp_worker.py SPEC_JSON`` with ``pretrained``, ``out`` and optionally ``nan_rank`` /
``nan_iteration`` (that rank's loss is made non-finite during that iteration).
"""

from __future__ import annotations

import dataclasses
import json
import sys

import torch
from accelerate import Accelerator

from arrpo.rl import trainer as trainer_module
from arrpo.rl.config import build_config
from arrpo.rl.data import PromptItem
from arrpo.rl.judging import ChannelMeanJudge
from arrpo.rl.lora import lora_state_dict
from arrpo.rl.policies import load_policy


def main() -> None:
    torch.set_num_threads(1)
    spec = json.loads(sys.argv[1])
    acc = Accelerator(cpu=True)
    cfg = build_config({
        "model": {"pretrained": spec["pretrained"]},
        "sampling": {"num_steps": 3},
        "objective": {"beta": 0.01},
        "optim": {"accumulate_samples": 2, "micro_batch": 2, "lr": 1e-2},
        "train": {"iterations": 3, "prompts_per_iteration": 1, "overlap": False, "output_dir": spec["out"],
                  "resume": None, "tensorboard": False, "checkpoint_every": 0, "gallery_every": 0,
                  "eval_every": spec.get("eval_every", 0), "eval_seeds": 2},
        "data": {"eval_prompts": spec.get("eval_prompts")},
    }, preset="tiny-cpu")  # fmt: skip
    policy = load_policy("sd3", spec["pretrained"], height=32, width=32, max_sequence_length=16)
    prompts = [PromptItem(p) for p in ["a red apple", "a cat on a sofa", "mountains", "a green robot"]]
    tr = trainer_module.RPOTrainer(cfg, policy=policy, judge=ChannelMeanJudge(), prompts=prompts, accelerator=acc)
    if spec.get("nan_rank") == acc.process_index:
        original = trainer_module.ppo_kl_loss

        def poisoned(*args, **kwargs):
            terms = original(*args, **kwargs)
            if tr.iteration == spec["nan_iteration"]:
                return dataclasses.replace(terms, loss=terms.loss * float("nan"))
            return terms

        trainer_module.ppo_kl_loss = poisoned
    history = tr.train()
    tr.close()
    state = {"lora": lora_state_dict(policy.transformer), "skipped": tr.skipped_updates, "steps": tr.optimizer_steps,
             "eval": [h.get("eval/win_rate") for h in history]}
    torch.save(state, f"{spec['out']}/rank{acc.process_index}.pt")


if __name__ == "__main__":
    main()
