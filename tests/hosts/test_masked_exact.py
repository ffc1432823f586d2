"""The std-preserving fill (arrpo.masking) under each host's own advantage code, re-written from
its source (tests/hosts): masked samples get exactly zero advantage and every other sample the
advantage of the batch without them, to float32 precision; GDPO, which no value keeps exact."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arrpo.masking import MASKED_VALUE, batch_std_refusal, std_preserving_fill  # noqa: E402
from tests.hosts import flow_factory_host as ff  # noqa: E402
from tests.hosts import flow_grpo_host as fg  # noqa: E402
from tests.hosts import verl_omni_host as vo  # noqa: E402

SIZES = (2, 4, 16, 24)


def batch(k: int, valid_groups: int, masked_groups: int, ddof: int, seed: int):
    """Rewards as float32 (the hosts' conversion), group ids; masked groups last, filled."""
    rng = np.random.default_rng(seed)
    valid = rng.uniform(0.0, 1.0, size=valid_groups * k).astype(np.float32)
    fill = std_preserving_fill(valid.astype(np.float64).tolist(), masked_groups * k, ddof=ddof)
    full = np.concatenate([valid, np.full(masked_groups * k, fill, dtype=np.float32)])
    groups = np.repeat(np.arange(valid_groups + masked_groups), k)
    return valid, full, groups, valid_groups * k


@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("global_std", [True, False])
def test_flow_grpo_tracker_masked_zero_others_unchanged(k, global_std):
    valid, full, groups, n = batch(k, 3, 2, ddof=0, seed=k)
    prompts = [f"p{g}" for g in groups]
    with_masked = fg.PerPromptStatTracker(global_std).update(prompts, full[:, None])
    without = fg.PerPromptStatTracker(global_std).update(prompts[:n], valid[:, None])
    assert np.all(with_masked[n:] == 0.0)
    assert with_masked[:n] == pytest.approx(without, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_flow_grpo_gathered_over_ranks(k, ranks):
    """Each rank holds a slice; the host gathers them (rank order) before the tracker."""
    _, full, groups, n = batch(k, 4, 4, ddof=0, seed=100 + k)
    order = np.random.default_rng(k).permutation(len(full))  # the sampler deals samples over ranks
    gathered = np.concatenate(np.array_split(full[order], ranks))
    prompts = [f"p{g}" for g in groups[order]]
    adv = fg.PerPromptStatTracker(True).update(prompts, gathered[:, None])
    masked = order >= n
    assert np.all(adv[masked] == 0.0)
    without = fg.PerPromptStatTracker(True).update([p for p, m in zip(prompts, masked, strict=True) if not m],
                                                   gathered[~masked][:, None])
    assert adv[~masked] == pytest.approx(without, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("global_std", [True, False])
def test_flow_factory_weighted_sum(k, global_std):
    valid, full, groups, n = batch(k, 3, 1, ddof=0, seed=7 * k)
    adv = ff.weighted_sum_advantages(full, groups, global_std=global_std)
    assert np.all(adv[n:] == 0.0)
    assert adv[:n] == pytest.approx(ff.weighted_sum_advantages(valid, groups[:n], global_std=global_std),
                                    rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("k", SIZES)
def test_verl_omni_batch_torch_std_needs_the_sample_std_fill(k):
    """torch.std is the sample std (ddof=1): the ddof=1 fill is exact, the ddof=0 one is not."""
    valid, full, groups, n = batch(k, 3, 2, ddof=1, seed=11 * k)
    adv = vo.flow_grpo_outcome_advantage(torch.tensor(full), groups)
    assert torch.all(adv[n:].abs() < 1e-6)  # verl's float32 torch.mean of a constant rounds
    reference = vo.flow_grpo_outcome_advantage(torch.tensor(valid), groups[:n])
    assert adv[:n].tolist() == pytest.approx(reference.tolist(), rel=1e-5, abs=1e-6)
    wrong = full.copy()
    wrong[n:] = np.float32(std_preserving_fill(valid.astype(np.float64).tolist(), len(full) - n, ddof=0))
    moved = vo.flow_grpo_outcome_advantage(torch.tensor(wrong), groups)
    assert moved[:n].tolist() != pytest.approx(reference.tolist(), rel=1e-4)


def test_gdpo_is_exact_for_no_masked_value():
    """GDPO normalises the batch of per-group z-scores: a masked group's z-scores are 0 whatever its
    value, and its zeros shrink that std, so every other advantage moves: arrpo refuses the step."""
    valid, _, groups, n = batch(4, 3, 1, ddof=0, seed=3)
    reference = ff.gdpo_advantages(valid, groups[:n])
    for value in (MASKED_VALUE, std_preserving_fill(valid.tolist(), 4), 123.0):
        full = np.concatenate([valid, np.full(4, value, dtype=np.float32)])
        adv = ff.gdpo_advantages(full, groups)
        assert np.all(adv[n:] == 0.0)
        assert adv[:n] / reference[:n] == pytest.approx(np.full(n, np.sqrt(16 / 12)), rel=1e-6)


def test_fill_edge_cases():
    assert std_preserving_fill([], 5) == MASKED_VALUE
    assert std_preserving_fill([0.3], 4) == 0.3
    assert std_preserving_fill([0.3], 4, ddof=1) == 0.3
    assert std_preserving_fill([0.2, 0.4], 0) == pytest.approx(0.3)
    values = np.array([0.1, 0.5, 0.9, 0.2])
    c = std_preserving_fill(values.tolist(), 6)
    assert np.std(np.r_[values, [c] * 6]) == pytest.approx(np.std(values), rel=1e-12)
    with pytest.raises(ValueError, match="ddof"):
        std_preserving_fill([1.0], 1, ddof=2)
    assert "global_std = False" in batch_std_refusal("flow_grpo", 3, "why")
    assert "advantage_aggregation: sum" in batch_std_refusal("flow_factory", 3, "why")
