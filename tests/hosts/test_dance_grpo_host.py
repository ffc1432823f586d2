"""DanceGRPO, driven as its ``train_grpo_flux.py`` decode loop drives a reward
(tests/hosts/dance_grpo_host.py): the raw VAE output in [−1, 1], the caption list, chunks of
2, 4, 16 and 24."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from arrpo.integrations.dance_grpo import ChunkRewards  # noqa: E402
from arrpo.integrations.groups import RewardGroupError  # noqa: E402
from arrpo.server import ServiceConfig  # noqa: E402
from tests.hosts import dance_grpo_host as host  # noqa: E402
from tests.hosts.judges import official  # noqa: E402


def test_the_documented_line_pasted_into_the_loop_is_refused_with_the_fix(service):
    """``add(image, caption)`` verbatim: ``image`` is the VAE output in [−1, 1], ``caption`` the
    whole list. Never scored silently."""
    collector = ChunkRewards(2, service.url)
    caption = host.repeat_captions(["a cat"], 2)
    with pytest.raises(ValueError, match=r"decoded_image\[0\]"):
        host.sample_reference_model(lambda image, caption, **_: collector.add(image, caption), caption, [40, 200])
    with pytest.raises(ValueError, match=r"batch_caption\[0\]"):
        collector.add(host.postprocess(host.vae_output(40))[0], caption)
    assert not service.vlm.seen


@pytest.mark.parametrize("k", [2, 4, 16, 24])
def test_the_loop_with_decoded_images_or_the_vae_range_stated_equals_whole_chunk_judging(start_service, k):
    service = start_service(config=ServiceConfig(max_images=24))
    captions = host.repeat_captions(["a cat", "a dog"], k)
    grays = [5 + (230 * i) // (k - 1) for i in range(k)] + [250 - (230 * i) // (k - 1) for i in range(k)]
    expected = official(grays[:k]) + official(grays[k:])
    pil = ChunkRewards(k, service.url)
    rewards = host.sample_reference_model(
        lambda decoded_image, batch_caption, **_: pil.add(decoded_image[0], batch_caption[0]), captions, grays)
    assert rewards.tolist() == pytest.approx(expected, abs=1e-6)
    raw = ChunkRewards(k, service.url, value_range=(-1.0, 1.0))
    rewards = host.sample_reference_model(
        lambda image, batch_caption, **_: raw.add(image, batch_caption), captions, grays)  # a 1-element list is fine
    assert rewards.tolist() == pytest.approx(expected, abs=1e-6)
    advantages = host.group_advantages(rewards, k)
    assert int(advantages[:k].argmax()) == k - 1 and int(advantages[k:].argmax()) == 0


def test_a_masked_chunk_has_zero_advantage_under_dance_grpos_group_std(start_service):
    from tests.hosts.judges import invalid_when

    service = start_service(invalid_when({90}))
    collector = ChunkRewards(4, service.url)
    captions = host.repeat_captions(["masked", "valid"], 4)
    grays = [30, 200, 90, 10, 250, 120, 160, 60]
    rewards = host.sample_reference_model(
        lambda decoded_image, batch_caption, **_: collector.add(decoded_image[0], batch_caption[0]), captions, grays)
    advantages = host.group_advantages(rewards, 4)
    assert advantages[:4].tolist() == [0.0] * 4
    assert advantages[4:].tolist() == pytest.approx(host.group_advantages(torch.tensor(official(grays[4:])), 4).tolist())


def test_a_chunk_mixing_prompts_gives_advice_chunk_rewards_users_can_follow(service):
    collector = ChunkRewards(2, service.url)
    collector.add(host.postprocess(host.vae_output(40))[0], "a cat")
    with pytest.raises(RewardGroupError) as caught:
        collector.add(host.postprocess(host.vae_output(90))[0], "a dog")
    message = str(caught.value)
    assert "group_size unset" not in message and "num_generations" in message and "contiguous" in message
