import random

import pytest
import torch

from arrpo.rl.loss import ppo_kl_loss, select_train_steps


def test_ratio_one_gives_minus_advantage():
    lp = torch.tensor([0.3, -0.2])
    out = ppo_kl_loss(lp, lp, torch.tensor([1.0, -0.1]), torch.zeros(2), beta=0.0)
    assert torch.equal(out.ratio, torch.ones(2))
    assert torch.allclose(out.loss, torch.tensor([-1.0, 0.1]))
    assert not out.clipped.any()


def test_clipping_stops_the_gradient_beyond_epsilon():
    new = torch.tensor([0.5, -0.5], requires_grad=True)  # ratios e^0.5 > 1.2 and e^-0.5 < 0.8
    out = ppo_kl_loss(new, torch.zeros(2), torch.tensor([1.0, -1.0]), torch.zeros(2), clip_eps=0.2, beta=0.0)
    assert out.clipped.all()
    assert torch.allclose(out.policy, torch.tensor([-1.2, 0.8]))
    out.loss.sum().backward()
    assert torch.equal(new.grad, torch.zeros(2))


def test_kl_term_is_added_with_beta():
    lp = torch.zeros(1)
    out = ppo_kl_loss(lp, lp, torch.zeros(1), torch.tensor([2.0]), beta=0.01)
    assert out.loss.item() == pytest.approx(0.02)


def test_step_selection_modes():
    assert select_train_steps(8) == list(range(7))
    assert select_train_steps(8, "all") == list(range(8))
    assert select_train_steps(8, "window", window=(2, 5)) == [2, 3, 4]
    frac = select_train_steps(8, "random_fraction", fraction=0.5, rng=random.Random(0))
    assert len(frac) == 4 and set(frac) <= set(range(7))
    assert sorted(select_train_steps(8, rng=random.Random(1))) == list(range(7))
    with pytest.raises(ValueError):
        select_train_steps(8, "window", window=(9, 12))


def test_k1_kl_has_no_expected_gradient_on_policy_but_the_closed_form_does():
    """What docs/training.md says about `kl: k1`: at samples drawn from the policy, E[∇ k1] = 0."""
    from arrpo.rl.sde import gaussian_kl, sde_step

    gen = torch.Generator().manual_seed(0)
    n = 20000
    x = torch.randn(n, 4, generator=gen)
    theta = torch.tensor(0.3, requires_grad=True)  # policy velocity (1 + θ)·x; the reference has θ = 0
    v_ref = x
    with torch.no_grad():
        drawn = sde_step((1 + theta) * x, x, 0.8, 0.5, eta=0.7, generator=gen)  # on-policy x_{t+1}
    new = sde_step((1 + theta) * x, x, 0.8, 0.5, eta=0.7, prev_sample=drawn.prev_sample)
    ref = sde_step(v_ref, x, 0.8, 0.5, eta=0.7, prev_sample=drawn.prev_sample)
    (g_k1,) = torch.autograd.grad((new.log_prob - ref.log_prob).mean(), theta, retain_graph=True)
    (g_closed,) = torch.autograd.grad(gaussian_kl(new.mean, ref.mean, new.std).mean(), theta)
    assert float(g_closed) > 0.1
    assert abs(float(g_k1)) < 0.05 * float(g_closed)  # zero up to sampling noise (~1/√n)
    with torch.no_grad():  # both estimate the same KL value
        k1_value, closed_value = (new.log_prob - ref.log_prob).mean(), gaussian_kl(new.mean, ref.mean, new.std).mean()
    assert float(k1_value) == pytest.approx(float(closed_value), rel=0.1)
