"""Rubric Policy Optimization (RPO): SDE rollouts of flow-matching generators, rubric-judged rewards,
PPO-clip + KL updates of LoRA adapters. Needs the ``train`` extra (torch, diffusers, peft, accelerate).

Everything torch-related in arrpo lives under this package, so the judging core imports without it.
"""
