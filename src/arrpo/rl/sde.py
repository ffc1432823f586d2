"""One stochastic Euler step of a flow-matching sampler, with its Gaussian log-probability.

The same pure function is used while sampling a trajectory (``prev_sample=None``: draw it) and
while replaying one for training (``prev_sample`` given: score it), so rollout and replay can never
drift apart. All arithmetic is done in float32 whatever the model dtype.

Convention: ``sigma`` runs from 1 (pure noise) down to 0 (data); the model predicts the velocity
``v = noise - x0`` so that the deterministic (ODE) Euler step is ``x + (sigma_next - sigma) * v``.

Two noise parameterisations are provided:

* ``"dance"`` — the DanceGRPO form the RPO authors use: ``std = eta * sqrt(sigma - sigma_next)`` and
  a score correction ``-eta^2/2 * score * (sigma_next - sigma)`` with
  ``score = -(x - (1 - sigma) * x0_hat) / sigma^2`` and ``x0_hat = x - sigma * v``. (``eta = 0.3``.)
* ``"flow"`` — the Flow-GRPO form: marginal-preserving SDE with noise level ``a`` (≈ 0.7),
  ``std_t = a * sqrt(sigma / (1 - sigma))`` (``1 - sigma`` floored at ``1 - sigma_max`` so the first
  step at ``sigma = 1`` stays finite) and step std ``std_t * sqrt(sigma - sigma_next)``.

**Log-prob reduction.** The per-step log-density of the diagonal Gaussian is *averaged* over all
latent elements of a sample (not summed), as the RPO/DanceGRPO code does. Averaging keeps the
importance ratio ``exp(logp_new - logp_old)`` in a numerically sane range for 10^5-element
latents, at the price of making it a geometric mean per element rather than the true density
ratio; clip ε and KL β of the paper are calibrated for this reduction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from arrpo.rl.config import SDEKind

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class SDEStep:
    """Result of one step: the next sample, its log-prob (one value per sample), mean and std."""

    prev_sample: torch.Tensor
    log_prob: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def time_shift(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3-style time shift ``s*σ / (1 + (s-1)*σ)`` (``shift=1`` is the identity)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sigma_schedule(num_steps: int, shift: float = 3.0) -> torch.Tensor:
    """``num_steps + 1`` sigmas from 1 to 0: ``linspace(1, 0)`` warped by :func:`time_shift`."""
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    return time_shift(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64), shift).float()


def _bcast(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-sample value as a float32 tensor broadcastable against ``like``."""
    t = torch.as_tensor(value, dtype=torch.float32, device=like.device)
    if t.ndim == 0:
        return t
    return t.reshape(-1, *([1] * (like.ndim - 1)))


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density, mean-reduced over all but the first dimension.

    Where ``std == 0`` (a deterministic step) the log-prob is defined as 0.
    """
    safe = torch.where(std > 0, std, torch.ones_like(std))
    lp = -((x - mean) ** 2) / (2 * safe**2) - torch.log(safe) - _LOG_SQRT_2PI
    lp = torch.where(std > 0, lp, torch.zeros_like(lp))
    return lp.mean(dim=tuple(range(1, lp.ndim)))


def sde_step(
    velocity: torch.Tensor,
    sample: torch.Tensor,
    sigma: torch.Tensor | float,
    sigma_next: torch.Tensor | float,
    *,
    kind: SDEKind = "dance",
    eta: float = 0.3,
    noise_level: float = 0.7,
    sigma_max: float | None = None,
    prev_sample: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> SDEStep:
    """Take one SDE step from ``sample`` at ``sigma`` to ``sigma_next`` and score it.

    Args:
        velocity: model output ``v`` (any dtype), same shape as ``sample``.
        sample: ``x_t``, shape ``(B, ...)``.
        sigma, sigma_next: current and next noise level, scalars or shape ``(B,)``.
        kind: ``"dance"`` (η form) or ``"flow"`` (noise-level form); see the module docstring.
        eta: η of the dance form. ``eta=0`` gives the deterministic Euler ODE step.
        noise_level: ``a`` of the flow form. ``0`` gives the Euler ODE step.
        sigma_max: flow form only: the largest sigma below 1 of the schedule (default 0.98).
        prev_sample: if given, this ``x_{t-1}`` is scored (replay) instead of drawing a new one.
        noise: standard-normal noise to use when drawing (else drawn with ``generator``).
        generator: RNG for the noise.

    Returns:
        :class:`SDEStep` in float32; ``log_prob`` has shape ``(B,)`` and carries gradients
        through ``velocity`` only (``prev_sample`` is treated as data).
    """
    v = velocity.float()
    x = sample.float()
    s = _bcast(sigma, x)
    s_next = _bcast(sigma_next, x)
    dt = s_next - s  # negative
    if kind == "dance":
        x0_hat = x - s * v
        score = -(x - (1 - s) * x0_hat) / s**2
        mean = x + dt * v - 0.5 * eta**2 * score * dt
        std = eta * torch.sqrt(torch.clamp(-dt, min=0))
    elif kind == "flow":
        floor = 1 - (sigma_max if sigma_max is not None else 0.98)
        std_t = noise_level * torch.sqrt(s / torch.clamp(1 - s, min=floor))
        mean = x * (1 + std_t**2 / (2 * s) * dt) + v * (1 + std_t**2 * (1 - s) / (2 * s)) * dt
        std = std_t * torch.sqrt(torch.clamp(-dt, min=0))
    else:
        raise ValueError(f"unknown SDE kind {kind!r}; use 'dance' or 'flow'")
    std = std.expand_as(mean)
    if prev_sample is None:
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        prev = mean + std * noise.float()
    else:
        prev = prev_sample.float()
    log_prob = gaussian_log_prob(prev.detach(), mean, std)
    return SDEStep(prev_sample=prev.detach(), log_prob=log_prob, mean=mean, std=std)


def predicted_x0(velocity: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """The model's clean-image prediction ``x̂0 = x − σ·v`` at noise level ``sigma`` (float32)."""
    x = sample.float()
    return x - _bcast(sigma, x) * velocity.float()


def gaussian_kl(mean_p: torch.Tensor, mean_q: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(mean_p, std²) ‖ N(mean_q, std²)), mean-reduced like the log-prob."""
    safe = torch.where(std > 0, std, torch.ones_like(std))
    kl = (mean_p - mean_q) ** 2 / (2 * safe**2)
    kl = torch.where(std > 0, kl, torch.zeros_like(kl))
    return kl.mean(dim=tuple(range(1, kl.ndim)))
