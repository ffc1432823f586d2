"""DanceGRPO: one image decoded and scored at a time, scores concatenated, advantages per chunk
of ``num_generations`` — with the arrpo reward buffered per chunk."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from arrpo.client import RewardClient  # noqa: E402
from arrpo.integrations.dance_grpo import ChunkRewards  # noqa: E402
from arrpo.integrations.groups import RewardGroupError  # noqa: E402
from tests.integrations.trainers import closest_to_source_wins, dance_grpo_rollout, gray_pil  # noqa: E402


def decoder(grays):
    return lambda index: torch.full((1, 3, 8, 8), grays[index] / 255.0)


def test_rollout_rewards_equal_whole_chunk_judging(service):
    grays = [30, 200, 90, 10, 250, 120, 160, 60]
    collector = ChunkRewards(4, service.url, value_range=(0, 1))
    rewards, advantages = dance_grpo_rollout(collector.add, ["a cat", "a dog"], 4, decoder(grays))
    with RewardClient(service.url) as client:
        expected = [r for k, p in enumerate(["a cat", "a dog"])
                    for r in client.group_rewards(p, [gray_pil(g) for g in grays[4 * k:4 * k + 4]]).rewards]
    assert rewards.tolist() == pytest.approx(expected)
    assert advantages[:4].argmax() == 1 and advantages[4:].argmax() == 0
    assert collector.finish().tolist() == pytest.approx(expected)
    assert collector.stats["masked_samples"] == 0


def test_edit_chunks_carry_their_source(start_service):
    service = start_service(closest_to_source_wins)
    collector = ChunkRewards(2, service.url, value_range=(0, 1))
    rewards, _ = dance_grpo_rollout(
        collector.add, ["match it", "match it"], 2, decoder([10, 200, 10, 200]),
        sources=[gray_pil(0), gray_pil(255)],
    )
    assert rewards.tolist() == pytest.approx([1.0, -0.1, -0.1, 1.0])
    assert all(len(request.image_bytes) == 3 for request in service.vlm.seen)


def test_groups_over_the_service_limit_are_refused_up_front_or_split(service):
    with pytest.raises(RewardGroupError, match="18 images is over the service's limit of 16"):
        ChunkRewards(18, service.url)
    collector = ChunkRewards(18, service.url, split_large_groups=True, value_range=(0, 1))
    grays = list(range(10, 190, 10))
    rewards, _ = dance_grpo_rollout(collector.add, ["p"], 18, decoder(grays))
    assert rewards.tolist() == pytest.approx([-0.1 + 1.1 * k / 8 for k in range(9)] * 2)
    assert len(service.vlm.seen) == 2 * 36  # two sub-groups of 9, all pairs each; no 413


def test_chunks_are_checked_against_the_limit_the_service_reports(start_service):
    from arrpo.server import ServiceConfig

    service = start_service(config=ServiceConfig(max_images=4))
    with pytest.raises(RewardGroupError, match="6 images is over the service's limit of 4"):
        ChunkRewards(6, service.url)
    collector = ChunkRewards(6, service.url, split_large_groups=True, value_range=(0, 1))
    rewards, _ = dance_grpo_rollout(collector.add, ["p"], 6, decoder(list(range(10, 70, 10))))
    assert rewards.tolist() == pytest.approx([-0.1, 0.45, 1.0] * 2)  # two sub-groups of 3, no 413
    assert len(service.vlm.seen) == 2 * 3


def test_incomplete_or_mixed_chunks_fail_loudly(service):
    collector = ChunkRewards(2, service.url, value_range=(0, 1))
    collector.add(torch.rand(1, 3, 8, 8), "a")
    with pytest.raises(RewardGroupError, match="1 of 2 images"):
        collector.finish()
    with pytest.raises(RewardGroupError, match="mixes prompts"):
        collector.add(torch.rand(3, 8, 8), "a")
        collector.add(torch.rand(3, 8, 8), "b")
