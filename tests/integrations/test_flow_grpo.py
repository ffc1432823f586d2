"""Flow-GRPO: the arrpo reward registered through ``multi_score`` and called as its train and
eval loops call it (thread pool, NCHW float tensors, ``rewards.items()`` / ``rewards["avg"]``)."""

from __future__ import annotations

import json
import logging

import pytest

torch = pytest.importorskip("torch")

from arrpo.client import RewardClient, RewardServiceError  # noqa: E402
from arrpo.integrations.flow_grpo import ArrpoRewardFn, arrpo_score, with_arrpo  # noqa: E402
from arrpo.integrations.groups import RewardGroupError  # noqa: E402
from arrpo.masking import std_preserving_fill  # noqa: E402
from tests.integrations.trainers import (  # noqa: E402
    closest_to_source_wins,
    flow_grpo_multi_score,
    flow_grpo_step,
    gray_pil,
    gray_tensor,
)


def whole_group_rewards(url: str, prompts: list[str], grays: list[int], sources: list[int] | None = None):
    """Each prompt's (and source's) whole group judged at once, in batch order."""
    expected = [0.0] * len(prompts)
    keys = list(zip(prompts, sources or [None] * len(prompts), strict=True))
    with RewardClient(url) as client:
        for key in dict.fromkeys(keys):
            members = [i for i, k in enumerate(keys) if k == key]
            source = gray_pil(key[1]) if key[1] is not None else None
            result = client.group_rewards(key[0], [gray_pil(grays[i]) for i in members], source=source)
            for pos, i in enumerate(members):
                expected[i] = result.rewards[pos]
    return expected


@pytest.fixture
def env(monkeypatch, service):
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    k(monkeypatch, 2)
    return service


def k(monkeypatch, samples_per_prompt: int, **more) -> None:
    """Flow-GRPO needs the trainer's samples per prompt (config.sample.num_image_per_prompt)."""
    monkeypatch.setenv("ARRPO_REWARD_OPTIONS", json.dumps({"samples_per_prompt": samples_per_prompt, **more}))


def test_registered_in_multi_score_and_consumed_like_the_train_loop(env, monkeypatch):
    """config.reward_fn = {"arrpo": 1.0} with the one-line registration; two sampling batches."""
    k(monkeypatch, 4)
    multi_score = with_arrpo(flow_grpo_multi_score)
    reward_fn = multi_score("cpu", {"arrpo": 1.0})
    prompts = ["a cat", "a dog", "a cat", "a dog", "a cat", "a dog", "a cat", "a dog"]
    grays = [30, 200, 90, 10, 250, 120, 160, 60]
    batches = [(gray_tensor(grays[:8]), prompts, [{}] * 8, None), (gray_tensor(grays[::-1]), prompts[::-1], [{}] * 8, None)]
    rewards = flow_grpo_step(reward_fn, batches)
    assert set(rewards) == {"arrpo", "avg"}
    assert rewards["avg"].shape == (16,) and rewards["avg"].dtype == torch.float32
    expected = whole_group_rewards(env.url, prompts, grays) + whole_group_rewards(env.url, prompts[::-1], grays[::-1])
    assert rewards["avg"].tolist() == pytest.approx(expected)
    assert rewards["arrpo"].tolist() == pytest.approx(expected)
    assert max(expected) == pytest.approx(1.0) and min(expected) == pytest.approx(-0.1)


def test_combined_with_flow_grpo_rewards_by_weight(env):
    reward_fn = with_arrpo(flow_grpo_multi_score)("cpu", {"arrpo": 2.0, "jpeg_size": 0.5})
    images = gray_tensor([10, 250])
    details, _ = reward_fn(images, ["p", "p"], [{}, {}], only_strict=True)
    assert list(details["arrpo"]) == pytest.approx([-0.1, 1.0])
    means = [float(im.mean()) for im in images]
    assert list(details["avg"]) == pytest.approx([2.0 * -0.1 + 0.5 * means[0], 2.0 * 1.0 + 0.5 * means[1]])


def test_scorer_factory_fits_flow_grpo_registry(env):
    """Registered as ``"arrpo": arrpo_score`` in score_functions: multi_score calls it with device."""
    assert "device" in arrpo_score.__code__.co_varnames
    scores, info = arrpo_score("cpu")(gray_tensor([40, 20]), ["x", "x"], [{}, {}])
    assert scores == pytest.approx([1.0, -0.1]) and info["mask"] == [True, True]


def test_kontext_passes_source_images_fourth(start_service):
    """train_flux_kontext.py: reward_fn(images, prompts, metadata, ref_images, only_strict=True),
    ref_images a list of PIL images; one instruction over two different sources stays two groups."""
    service = start_service(closest_to_source_wins)
    reward_fn = ArrpoRewardFn(service.url, samples_per_prompt=2)
    prompts = ["match it"] * 4
    grays, sources = [10, 200, 10, 200], [0, 0, 255, 255]
    batch = (gray_tensor(grays), prompts, [{}] * 4, [gray_pil(s) for s in sources])
    rewards = flow_grpo_step(reward_fn, [batch], kontext=True)
    assert rewards["avg"].tolist() == pytest.approx([1.0, -0.1, -0.1, 1.0])
    assert rewards["avg"].tolist() == pytest.approx(whole_group_rewards(service.url, prompts, grays, sources))
    assert len(service.vlm.seen[-1].image_bytes) == 3  # the source travelled with the pair


def test_eval_judges_each_prompt_against_its_first_evaluated_image(env):
    """eval(): one sample per prompt, only_strict=False: the first evaluation sets the anchors
    (0.5 each), later ones are the win rate against them; a repeated prompt meets its anchor."""
    reward_fn = with_arrpo(flow_grpo_multi_score)("cpu", {"arrpo": 1.0})
    details, _ = reward_fn(gray_tensor([10, 20, 30]), ["a", "b", "b"], [{}] * 3, only_strict=False)
    assert details["avg"] == pytest.approx([0.5, 0.5, 1.0])  # 30 beats the anchor of "b" (20)
    details, _ = reward_fn(gray_tensor([5, 90]), ["a", "b"], [{}] * 2, only_strict=False)
    assert details["avg"] == pytest.approx([0.0, 1.0])
    weighted = with_arrpo(flow_grpo_multi_score)("cpu", {"arrpo": 0.5, "jpeg_size": 1.0})
    images = gray_tensor([10, 200])
    details, _ = weighted(images, ["c", "c"], [{}] * 2, only_strict=False)
    means = [float(im.mean()) for im in images]
    assert details["avg"] == pytest.approx([0.5 * 0.5 + means[0], 0.5 * 1.0 + means[1]])


def test_a_group_left_incomplete_fails_the_training_step(env, monkeypatch):
    k(monkeypatch, 2, idle_timeout=0.2)
    reward_fn = with_arrpo(flow_grpo_multi_score)("cpu", {"arrpo": 1.0})
    with pytest.raises(RewardGroupError, match="1 of 2 samples"):
        flow_grpo_step(reward_fn, [(gray_tensor([1, 2, 3]), ["a", "b", "b"], [{}] * 3, None)])
    before = len(env.vlm.seen)
    details, _ = reward_fn(gray_tensor([1, 2]), ["a", "b"], [{}, {}])
    with pytest.raises(RewardGroupError):
        dict(details)
    assert len(env.vlm.seen) == before  # fragments are never judged


def test_a_group_left_incomplete_is_masked_and_counted_when_opted_in(env, monkeypatch, caplog):
    k(monkeypatch, 2, on_failure="mask", idle_timeout=0.2)
    reward = ArrpoRewardFn()
    with caplog.at_level(logging.WARNING, logger="arrpo.integrations"):
        details, meta = reward(gray_tensor([1, 2, 3]), ["a", "b", "b"], [{}] * 3)
        # Flow-GRPO's default global std: the masked sample gets the value that keeps the epoch's std
        assert details["avg"] == pytest.approx([std_preserving_fill([-0.1, 1.0], 1), -0.1, 1.0])
    info = meta["arrpo"]
    assert info["mask"] == [False, True, True] and info["unscorable_groups"] == 1 and info["masked_samples"] == 1
    assert reward.stats["unscorable_groups"] == 1 and reward.stats["masked_samples"] == 1
    assert "1 of 3 sample(s) masked" in caplog.text


def test_configuration_errors_before_the_run(monkeypatch, env):
    monkeypatch.delenv("ARRPO_SERVICE_URL")
    with pytest.raises(ValueError, match="ARRPO_SERVICE_URL"):
        with_arrpo(flow_grpo_multi_score)("cpu", {"arrpo": 1.0})
    monkeypatch.setenv("ARRPO_SERVICE_URL", env.url)
    k(monkeypatch, 2, presett="official")
    with pytest.raises(ValueError, match="presett"):
        ArrpoRewardFn()
    k(monkeypatch, 2, preset="offical")
    with pytest.raises(ValueError, match="preset"):
        ArrpoRewardFn()
    monkeypatch.setenv("ARRPO_REWARD_OPTIONS", "{not json")
    with pytest.raises(ValueError, match="JSON"):
        ArrpoRewardFn()


def test_pointwise_mode_judges_against_the_metadata_anchor(env, tmp_path):
    """No grouping: every sample against its prompt's anchor image (a path in the metadata)."""
    anchor = tmp_path / "ref.png"
    gray_pil(100).save(anchor)
    reward = ArrpoRewardFn(mode="pointwise")
    metadata = [{"anchor_image": str(anchor)}] * 3
    details, _ = reward(gray_tensor([50, 150, 200]), ["a", "b", "c"], metadata)
    assert details["avg"] == pytest.approx([-0.1, 1.0, 1.0])
    with pytest.raises(RewardGroupError, match="no anchor"):
        reward(gray_tensor([50]), ["a"], [{}])


def test_service_down_fails_the_step_after_retries(monkeypatch):
    monkeypatch.delenv("ARRPO_REWARD_OPTIONS", raising=False)
    reward = ArrpoRewardFn("http://127.0.0.1:9", samples_per_prompt=2, max_retries=2, backoff=0.01, timeout=2)
    with pytest.raises(RewardServiceError) as caught:
        reward(gray_tensor([1, 2]), ["p", "p"], [{}, {}])
    assert caught.value.code == "unreachable" and "3 attempt" in caught.value.message
    masked = ArrpoRewardFn("http://127.0.0.1:9", samples_per_prompt=2, max_retries=1, backoff=0.01, timeout=2,
                           on_failure="mask")
    details, meta = masked(gray_tensor([1, 2]), ["p", "p"], [{}, {}])
    assert list(details["avg"]) == [0.0, 0.0] and meta["arrpo"]["failed_groups"] == 1
    assert masked.stats["failed_groups"] == 1 and masked.stats["masked_samples"] == 2


@pytest.mark.parametrize("form", ["nchw_float_tensor", "nhwc_uint8_numpy", "pil_list"])
def test_image_forms_flow_grpo_reward_fns_accept(env, form):
    np = pytest.importorskip("numpy")
    values = [40, 220, 130]
    images = {
        "nchw_float_tensor": gray_tensor(values),
        "nhwc_uint8_numpy": np.stack([np.full((8, 8, 3), v, dtype=np.uint8) for v in values]),
        "pil_list": [gray_pil(v) for v in values],
    }[form]
    details, _ = ArrpoRewardFn(samples_per_prompt=3)(images, ["p"] * 3, [{}] * 3)
    assert list(details["avg"]) == pytest.approx([-0.1, 1.0, 0.45])


def test_a_masked_group_is_zero_under_a_per_group_std(env, monkeypatch):
    """host_std 'group' (Flow-GRPO's global_std False): the masked group's value is 0.0."""
    k(monkeypatch, 2, on_failure="mask", idle_timeout=0.2, host_std="group")
    details, meta = ArrpoRewardFn()(gray_tensor([1, 2, 3]), ["a", "b", "b"], [{}] * 3)
    assert details["avg"] == pytest.approx([0.0, -0.1, 1.0]) and meta["arrpo"]["mask"] == [False, True, True]
