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
