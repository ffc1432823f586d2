"""The RPO objective (pure): PPO-clipped importance ratio with the trajectory's advantage on every
trained step, plus β·KL to the reference policy; and the choice of trained steps.

Per sample ``i`` and trained step ``t`` (to be *minimised*)::

    ratio = exp(logp_new - logp_old)
    loss  = max(-A_i * ratio, -A_i * clip(ratio, 1 - ε, 1 + ε)) + β * KL_t

``KL_t`` is either the k1 sample estimate ``logp_new - logp_ref`` at the sampled ``x_{t-1}`` (what
the authors use) or the closed-form KL between the two Gaussians, which share their std, so it is
``mean((μ_new - μ_ref)^2 / (2 std^2))`` — never negative, lower variance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from arrpo.rl.config import StepSelection


@dataclass(frozen=True)
class StepLoss:
    """Per-sample loss terms of one trained step (shape ``(B,)`` each) and diagnostics."""

    loss: torch.Tensor
    policy: torch.Tensor
    kl: torch.Tensor
    ratio: torch.Tensor
    clipped: torch.Tensor  # bool: the clipped branch was active (no gradient through ratio)


def ppo_kl_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    kl: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    beta: float = 0.01,
) -> StepLoss:
    """PPO-clip policy loss plus ``beta * kl``, per sample (no reduction)."""
    ratio = torch.exp(logp_new - logp_old.detach())
    adv = advantages.to(ratio.dtype)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    policy = torch.maximum(unclipped, clipped)
    return StepLoss(
        loss=policy + beta * kl,
        policy=policy,
        kl=kl,
        ratio=ratio,
        clipped=(clipped > unclipped).detach(),
    )


def select_train_steps(
    num_steps: int,
    mode: StepSelection = "all_but_last",
    *,
    fraction: float = 1.0,
    window: tuple[int, int] | None = None,
    rng: random.Random | None = None,
) -> list[int]:
    """Indices of the denoising steps that receive gradients, in the order they are trained.

    ``all_but_last`` (default, as the authors; the last step, σ_{S-1} → 0, has the *largest*
    Δσ of the shifted schedule and so the largest std of the dance SDE, and its sample is not what
    the judge sees: the reward image is that step's x̂0 prediction, see ``reward.reward_image``),
    ``all``, ``random_fraction`` (a random ``fraction`` of all-but-last, at least one) or
    ``window`` (``[start, end)`` of step indices). The order is shuffled when ``rng`` is given.
    """
    if mode == "all":
        steps = list(range(num_steps))
    elif mode == "all_but_last":
        steps = list(range(max(1, num_steps - 1)))
    elif mode == "random_fraction":
        pool = list(range(max(1, num_steps - 1)))
        k = max(1, round(fraction * len(pool)))
        steps = sorted((rng or random.Random()).sample(pool, k))
    elif mode == "window":
        if window is None:
            raise ValueError("window selection needs window=(start, end)")
        start, end = window
        steps = list(range(max(0, start), min(num_steps, end)))
        if not steps:
            raise ValueError(f"window {window} selects no step of {num_steps}")
    else:
        raise ValueError(f"unknown step selection {mode!r}")
    if rng is not None:
        rng.shuffle(steps)
    return steps
