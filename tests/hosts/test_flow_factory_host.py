"""Flow-Factory, driven as its RewardProcessor, RewardBuffer and AdvantageProcessor drive a
groupwise reward (tests/hosts/flow_factory_host.py): t2i and edits, both samplers, async with
several workers, and the masked-value rule under its own advantage code."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arrpo.client import RewardServiceError  # noqa: E402
from arrpo.integrations.flow_factory import ArrpoReward  # noqa: E402
from arrpo.integrations.groups import RewardGroupError  # noqa: E402
from tests.hosts import flow_factory_host as host  # noqa: E402
from tests.hosts.judges import invalid_when, official  # noqa: E402
from tests.integrations.trainers import closest_to_source_wins  # noqa: E402
from tests.serve.helpers import slow_brighter_wins  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
ACCELERATOR = SimpleNamespace(device=torch.device("cpu"), process_index=0, num_processes=1)


def reward_arguments(url: str, **extra) -> SimpleNamespace:
    """RewardArguments after __post_init__: unknown YAML keys land in extra_kwargs."""
    return SimpleNamespace(name="arrpo", reward_model="arrpo.integrations.flow_factory.ArrpoReward", weight=1.0,
                           dtype=torch.bfloat16, device=torch.device("cuda"), batch_size=16,
                           async_reward=False, num_workers=1, extra_kwargs={"url": url, **extra})


def t2i_samples(groups: dict[str, list[int]]) -> list:
    return [host.T2ISample(image=host.tensor_image(g), prompt=p) for p, grays in groups.items() for g in grays]


def deal(samples: list, ranks: int) -> list[list]:
    """distributed_k_repeat: a group's copies spread over ranks."""
    return [samples[r::ranks] for r in range(ranks)]


@pytest.mark.parametrize("k", [2, 4])
def test_t2i_with_distributed_k_repeat_gathers_only_fields_a_t2i_sample_has(service, k):
    model = ArrpoReward(config=reward_arguments(service.url), accelerator=ACCELERATOR)
    groups = {"a cat": [30 + 40 * i for i in range(k)], "a dog": [200 - 40 * i for i in range(k)]}
    samples = t2i_samples(groups)
    per_rank = host.groupwise_distributed(model, deal(samples, 2))
    got = {}
    for rank_samples, values in zip(deal(samples, 2), per_rank, strict=True):
        for s, v in zip(rank_samples, values.tolist(), strict=True):
            got[(s.prompt, round(float(s.image[0, 0, 0]) * 255))] = v
    for prompt, grays in groups.items():
        assert [got[(prompt, g)] for g in grays] == pytest.approx(official(grays), abs=1e-6)


def test_t2i_with_group_contiguous_and_edits_with_both_samplers(start_service):
    service = start_service(closest_to_source_wins)
    edit = ArrpoReward(config=reward_arguments(service.url, task="edit"), accelerator=ACCELERATOR)
    assert "condition_images" in edit.required_fields
    samples = [host.I2ISample(image=host.tensor_image(g), prompt="match it", condition_images=[host.tensor_image(src)])
               for src in (0, 255) for g in (10, 200)]
    local = host.groupwise_local(edit, samples)
    spread = torch.cat(host.groupwise_distributed(edit, [samples[0::2], samples[1::2]]))
    assert local.tolist() == pytest.approx([1.0, -0.1, -0.1, 1.0])
    position = {id(s): k for k, s in enumerate(samples)}
    order = samples[0::2] + samples[1::2]
    assert spread.tolist() == pytest.approx([local[position[id(s)]].item() for s in order])
    t2i = ArrpoReward(config=reward_arguments(service.url), accelerator=ACCELERATOR)
    assert "condition_images" not in t2i.required_fields
    with pytest.raises(RewardGroupError, match="task: edit"):  # an edit run configured as t2i
        host.groupwise_local(t2i, samples)


def test_async_reward_with_four_workers_judges_four_ready_groups_at_once(start_service):
    service = start_service(slow_brighter_wins(0.5))
    config = reward_arguments(service.url)
    config.async_reward, config.num_workers = True, 4
    model = ArrpoReward(config=config, accelerator=ACCELERATOR)
    buffer = host.RewardBuffer(model, group_size=2, num_workers=4)
    groups = {f"prompt {i}": [20 + i, 200 - i] for i in range(4)}
    buffer.add_samples(t2i_samples(groups))  # four complete groups at once
    rewards = buffer.finalize()
    assert rewards.tolist() == pytest.approx([-0.1, 1.0] * 4)
    assert len(buffer.threads) == 4
    assert service.vlm.max_in_flight == 4  # the four one-pair groups were judged concurrently


def test_async_reward_failure_is_raised_by_finalize_as_the_service_error():
    config = reward_arguments("http://127.0.0.1:9", max_retries=0)
    config.async_reward, config.num_workers = True, 4
    buffer = host.RewardBuffer(ArrpoReward(config=config, accelerator=ACCELERATOR), group_size=2, num_workers=4)
    buffer.add_samples(t2i_samples({"p": [10, 200]}))
    with pytest.raises(RewardServiceError) as caught:
        buffer.finalize()
    assert caught.value.code == "unreachable"


def test_serving_docs_describe_the_current_reward_buffer():
    section = DOCS.read_text().split("### Flow-Factory", 1)[1].split("\n### ", 1)[0]
    assert "worker thread failed" not in section
    assert "finalize()" in section and "num_workers" in section and "RewardServiceError" in section


def test_a_masked_group_has_zero_advantage_under_flow_factorys_aggregations(start_service):
    """A group with an unreadable pair (mask_group) next to a valid one. Under Flow-Factory's
    defaults (global_std true, GDPO: host_std batch) one call sees one group, so no value keeps the
    other advantages exact: the call fails naming the settings. With host_std: group (global_std
    false, advantage_aggregation: sum) the masked samples get advantage 0 and the valid group's
    advantages are those of a batch without the masked group."""
    service = start_service(invalid_when({90}))
    groups = {"masked": [30, 200, 90, 10], "valid": [250, 120, 160, 60]}
    samples = t2i_samples(groups)
    model = ArrpoReward(config=reward_arguments(service.url), accelerator=ACCELERATOR)
    with pytest.raises(RewardGroupError, match="advantage_aggregation: sum"):
        host.groupwise_local(model, samples)
    model = ArrpoReward(config=reward_arguments(service.url, host_std="group"), accelerator=ACCELERATOR)
    rewards = host.groupwise_local(model, samples).numpy()
    ids = host.group_indices(samples)
    masked = np.array([s.prompt == "masked" for s in samples])
    reference_rewards = np.array(official(groups["valid"]))
    per_group = host.weighted_sum_advantages(rewards, ids, global_std=False)
    assert np.all(per_group[masked] == 0.0)
    assert per_group[~masked] == pytest.approx(
        host.weighted_sum_advantages(reference_rewards, np.zeros(4, dtype=int), global_std=False))
