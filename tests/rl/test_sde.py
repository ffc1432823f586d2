import math

import pytest
import torch

from arrpo.rl.sde import gaussian_kl, gaussian_log_prob, sde_step, sigma_schedule, time_shift


def _inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=g).to(dtype)
    v = torch.randn(3, 4, 8, 8, generator=g).to(dtype)
    return x, v


def test_schedule_runs_from_one_to_zero_and_is_shifted():
    s = sigma_schedule(8, 3.0)
    assert s.shape == (9,) and s.dtype == torch.float32
    assert s[0] == 1.0 and s[-1] == 0.0
    assert torch.all(s[1:] < s[:-1])
    assert math.isclose(float(s[4]), 3 * 0.5 / (1 + 2 * 0.5), rel_tol=1e-6)
    assert torch.allclose(time_shift(torch.tensor([0.25]), 1.0), torch.tensor([0.25]))


@pytest.mark.parametrize("kind,param", [("dance", "eta"), ("flow", "noise_level")])
def test_zero_noise_is_the_euler_ode_step(kind, param):
    x, v = _inputs()
    out = sde_step(v, x, 0.6, 0.4, kind=kind, **{param: 0.0})
    assert torch.allclose(out.prev_sample, x + (0.4 - 0.6) * v, atol=1e-6)
    assert torch.all(out.std == 0)
    assert torch.all(out.log_prob == 0)


@pytest.mark.parametrize("kind", ["dance", "flow"])
def test_log_prob_is_maximal_at_the_mean(kind):
    x, v = _inputs()
    at_mean = sde_step(v, x, 0.7, 0.5, kind=kind)
    best = sde_step(v, x, 0.7, 0.5, kind=kind, prev_sample=at_mean.mean)
    for scale in (0.01, 0.1, 1.0):
        moved = sde_step(v, x, 0.7, 0.5, kind=kind, prev_sample=at_mean.mean + scale * at_mean.std)
        assert torch.all(best.log_prob > moved.log_prob)
    expected = -torch.log(at_mean.std) - 0.5 * math.log(2 * math.pi)
    assert torch.allclose(best.log_prob, expected.mean(dim=(1, 2, 3)), atol=1e-5)


def test_dance_form_matches_hand_computation():
    x, v = _inputs()
    s, sn, eta = 0.8, 0.5, 0.3
    x0 = x - s * v
    score = -(x - (1 - s) * x0) / s**2
    mean = x + (sn - s) * v - 0.5 * eta**2 * score * (sn - s)
    out = sde_step(v, x, s, sn, kind="dance", eta=eta)
    assert torch.allclose(out.mean, mean, atol=1e-6)
    assert torch.allclose(out.std, torch.full_like(x, eta * math.sqrt(s - sn)))


def test_flow_form_is_finite_at_sigma_one():
    x, v = _inputs()
    out = sde_step(v, x, 1.0, 0.9, kind="flow", sigma_max=0.9)
    assert torch.isfinite(out.mean).all() and torch.isfinite(out.log_prob).all()


def test_shapes_dtypes_and_gradients():
    x, v = _inputs(torch.bfloat16)
    v.requires_grad_(True)
    out = sde_step(v, x, torch.full((3,), 0.7), torch.full((3,), 0.5), generator=torch.Generator().manual_seed(1))
    assert out.prev_sample.dtype == out.log_prob.dtype == torch.float32
    assert out.prev_sample.shape == x.shape and out.log_prob.shape == (3,)
    assert not out.prev_sample.requires_grad
    out.log_prob.sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad.float()).all()


def test_replay_scores_the_given_sample_exactly():
    x, v = _inputs()
    drawn = sde_step(v, x, 0.7, 0.5, generator=torch.Generator().manual_seed(3))
    again = sde_step(v, x, 0.7, 0.5, prev_sample=drawn.prev_sample)
    assert torch.equal(drawn.log_prob, again.log_prob)


def test_log_prob_is_mean_reduced_gaussian_density():
    mean = torch.zeros(2, 5)
    std = torch.full((2, 5), 2.0)
    x = torch.ones(2, 5)
    ref = torch.distributions.Normal(mean, std).log_prob(x).mean(dim=1)
    assert torch.allclose(gaussian_log_prob(x, mean, std), ref)


def test_gaussian_kl_closed_form():
    std = torch.full((2, 3), 0.5)
    assert torch.all(gaussian_kl(torch.ones(2, 3), torch.ones(2, 3), std) == 0)
    kl = gaussian_kl(torch.ones(2, 3), torch.zeros(2, 3), std)
    assert torch.allclose(kl, torch.full((2,), 1 / (2 * 0.25)))
