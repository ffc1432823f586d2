"""Head-to-head comparison of the trained policy against its reference (LoRA disabled)."""

from __future__ import annotations

import asyncio
from collections import Counter

import torch

from arrpo.images import load_image
from arrpo.rl.policies.base import FlowPolicy
from arrpo.rl.rollout import SDEParams, rollout
from arrpo.rl.sde import sigma_schedule
from arrpo.schema import Comparison


@torch.no_grad()
def sample_images(policy: FlowPolicy, prompts: list[str], seeds: list[int], *, num_steps: int, shift: float, sde: SDEParams, sources=None, reference: bool = False):
    """One image per (prompt, seed), ``reference=True`` with LoRA disabled; noise fixed by the seed.
    The image is the last step's x̂0 prediction (identical to the final sample under the ODE)."""
    sigmas = sigma_schedule(num_steps, shift)
    images = []
    for k, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
        cond = policy.encode([prompt], [sources[k]] if sources else None)
        gen = torch.Generator().manual_seed(seed)
        noise = policy.initial_noise(1, gen)
        if reference:
            with policy.reference():
                traj = rollout(policy, cond, noise, sigmas, sde, gen)
        else:
            traj = rollout(policy, cond, noise, sigmas, sde, gen)
        images.extend(policy.decode(traj.final_latents()))
    return images


def head_to_head(policy: FlowPolicy, judge, prompts: list[str], seeds: list[int], *, num_steps: int, shift: float, sde: SDEParams | None = None, sources=None, task: str = "t2i", rubric=None, judge_all=None) -> dict[str, float]:
    """Win/loss/tie counts and win rate of the policy vs. its reference on the same noise.

    The policy is shown as image A on even items and as B on odd ones, so a position-biased judge
    cannot fake a win rate. ``sde`` defaults to the deterministic ODE sampler (η = 0).
    ``judge_all(comparisons) -> verdicts`` replaces calling ``judge`` on a fresh event loop (the
    trainer passes its background judging loop, where the judge's HTTP clients live).
    """
    sde = sde or SDEParams(eta=0.0)
    kwargs = dict(num_steps=num_steps, shift=shift, sde=sde, sources=sources)
    mine = sample_images(policy, prompts, seeds, **kwargs)
    ref = sample_images(policy, prompts, seeds, reference=True, **kwargs)
    comparisons = []
    for k, (prompt, a, b) in enumerate(zip(prompts, mine, ref, strict=True)):
        first, second = (a, b) if k % 2 == 0 else (b, a)
        source = load_image(sources[k]) if sources else None
        comparisons.append(Comparison(task=task, prompt=prompt, image_a=load_image(first), image_b=load_image(second), source=source, rubric=rubric, id=str(k)))

    async def run():
        return await asyncio.gather(*(judge.judge(c) for c in comparisons))

    verdicts = judge_all(comparisons) if judge_all is not None else asyncio.run(run())
    counts: Counter[str] = Counter()
    for k, v in enumerate(verdicts):
        if v.winner in ("A", "B"):
            policy_won = (v.winner == "A") == (k % 2 == 0)
            counts["win" if policy_won else "loss"] += 1
        else:
            counts[v.winner] += 1
    decided = counts["win"] + counts["loss"]
    return {
        "win": counts["win"], "loss": counts["loss"], "tie": counts["tie"], "invalid": counts["invalid"],
        "win_rate": counts["win"] / decided if decided else 0.5,
    }  # fmt: skip
