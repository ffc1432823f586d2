"""Flow-Factory: ``cls(config=RewardArguments, accelerator=...)``, its RewardProcessor's groupwise
path over simulated ranks (only ``required_fields`` gathered, whole groups by id, declared
arguments only, ``.rewards`` read), for t2i and edits."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import types
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

import arrpo.integrations.flow_factory as flow_factory  # noqa: E402
from arrpo.integrations.groups import RewardGroupError  # noqa: E402
from tests.integrations.trainers import (  # noqa: E402
    closest_to_source_wins,
    flow_factory_async_rewards,
    flow_factory_groupwise,
    gray_pil,
)


def reward_arguments(url: str | None, **extra) -> SimpleNamespace:
    """RewardArguments after __post_init__: torch device/dtype; unknown YAML keys in extra_kwargs."""
    extra_kwargs = {"url": url, **extra} if url else dict(extra)
    return SimpleNamespace(
        name="arrpo", reward_model="arrpo.integrations.flow_factory.ArrpoReward", weight=1.0,
        dtype=torch.bfloat16, device=torch.device("cuda"), batch_size=16, async_reward=False,
        num_workers=1, extra_kwargs=extra_kwargs,
    )


ACCELERATOR = SimpleNamespace(device=torch.device("cpu"), process_index=0, num_processes=4)


def test_constructed_like_flow_factory_runs_the_base_init(service):
    model = flow_factory.ArrpoReward(config=reward_arguments(service.url), accelerator=ACCELERATOR)
    assert model.device == torch.device("cpu")  # config says cuda: the accelerator's device
    assert model.dtype == torch.bfloat16 and model.model is None and model.accelerator is ACCELERATOR
    assert model.required_fields == ("prompt", "image")  # a T2ISample has no condition_images
    edit = flow_factory.ArrpoReward(config=reward_arguments(service.url, task="edit"), accelerator=ACCELERATOR)
    assert edit.required_fields == ("prompt", "image", "condition_images")


def test_subclasses_flow_factorys_groupwise_base_when_installed(service, monkeypatch):
    """With Flow-Factory importable, the class is its GroupwiseRewardModel (the processor routes by
    isinstance) and its own base __init__ runs."""
    calls = []

    class BaseRewardModel:
        required_fields = ()

        def __init__(self, config, accelerator):
            calls.append("base")
            self.accelerator = accelerator
            self.config = config
            self.device = accelerator.device if config.device == torch.device("cuda") else config.device
            self.dtype = config.dtype
            self.model = None

    class GroupwiseRewardModel(BaseRewardModel):
        required_fields = ("image", "prompt")

    @dataclass
    class RewardModelOutput:
        rewards: object
        extra_info: dict | None = None

    abc = types.ModuleType("flow_factory.rewards.abc")
    abc.GroupwiseRewardModel, abc.RewardModelOutput = GroupwiseRewardModel, RewardModelOutput
    for name, module in (("flow_factory", types.ModuleType("flow_factory")),
                         ("flow_factory.rewards", types.ModuleType("flow_factory.rewards")),
                         ("flow_factory.rewards.abc", abc)):
        monkeypatch.setitem(sys.modules, name, module)
    try:
        reloaded = importlib.reload(flow_factory)
        assert reloaded.FLOW_FACTORY and issubclass(reloaded.ArrpoReward, GroupwiseRewardModel)
        model = reloaded.ArrpoReward(config=reward_arguments(service.url), accelerator=ACCELERATOR)
        assert calls == ["base"] and model.device == torch.device("cpu")
        output = model(prompt=["p", "p"], image=[gray_pil(9), gray_pil(99)])
        assert isinstance(output, RewardModelOutput) and output.rewards.tolist() == pytest.approx([-0.1, 1.0])
    finally:
        monkeypatch.undo()
        importlib.reload(flow_factory)


def test_groupwise_path_over_ranks_t2i(service):
    model = flow_factory.ArrpoReward(config=reward_arguments(service.url, preset="symmetric"), accelerator=ACCELERATOR)
    # 2 prompts x 4 samples spread over 4 ranks, as the group-contiguous sampler's ids say
    grays = [10, 200, 90, 30, 250, 60, 120, 5]
    uids = ["u0", "u1", "u0", "u1", "u0", "u1", "u0", "u1"]
    samples = [{"prompt": f"prompt {u}", "image": gray_pil(g), "unique_id": u, "latents": object()}
               for g, u in zip(grays, uids, strict=True)]
    per_rank = flow_factory_groupwise(model, [samples[k:k + 2] for k in range(0, 8, 2)])
    rewards = torch.cat(per_rank).tolist()
    # symmetric preset, 2w - 1 by all-pairs win rate w within each id
    assert rewards == pytest.approx([-1.0, 1.0, -1 / 3, -1 / 3, 1.0, 1 / 3, 1 / 3, -1.0])


def test_groupwise_path_over_ranks_edits_keep_their_source(start_service):
    service = start_service(closest_to_source_wins)
    model = flow_factory.ArrpoReward(config=reward_arguments(service.url, task="edit"), accelerator=ACCELERATOR)
    samples = []
    for uid, source in (("a", 0), ("b", 255)):
        for g in (10, 200):
            samples.append({"prompt": "match it", "image": gray_pil(g), "unique_id": uid,
                            "condition_images": [gray_pil(source)]})
    per_rank = flow_factory_groupwise(model, [samples[:2], samples[2:]])
    assert torch.cat(per_rank).tolist() == pytest.approx([1.0, -0.1, -0.1, 1.0])
    assert all(len(request.image_bytes) == 3 for request in service.vlm.seen)


def test_group_of_one_fails_loudly_or_is_masked_and_counted(service):
    model = flow_factory.ArrpoReward(config=reward_arguments(service.url), accelerator=ACCELERATOR)
    with pytest.raises(RewardGroupError, match="group_size"):
        model(prompt=["p"], image=[gray_pil(1)])
    # under Flow-Factory's default batch std a masked sample cannot be exact: the call fails with the settings
    batch = flow_factory.ArrpoReward(config=reward_arguments(service.url, on_failure="mask"), accelerator=ACCELERATOR)
    with pytest.raises(RewardGroupError, match="global_std: false"):
        batch(prompt=["p"], image=[gray_pil(1)])
    masked = flow_factory.ArrpoReward(config=reward_arguments(service.url, on_failure="mask", host_std="group"),
                                      accelerator=ACCELERATOR)
    output = masked(prompt=["p"], image=[gray_pil(1)])
    assert output.rewards.tolist() == [0.0] and output.extra_info["mask"] == [False]
    assert masked.scorer.stats["unscorable_groups"] == 1


def test_configuration_errors_at_construction(service, monkeypatch):
    monkeypatch.delenv("ARRPO_SERVICE_URL", raising=False)
    with pytest.raises(ValueError, match="url"):
        flow_factory.ArrpoReward(config=reward_arguments(None), accelerator=ACCELERATOR)
    with pytest.raises(ValueError, match="ordr"):
        flow_factory.ArrpoReward(config=reward_arguments(service.url, ordr="both"), accelerator=ACCELERATOR)


def test_pointwise_mode_reads_anchors_from_dataset_metadata(service, tmp_path):
    anchor = tmp_path / "reference.png"
    gray_pil(100).save(anchor)
    config = reward_arguments(service.url, mode="pointwise")
    model = flow_factory.ArrpoReward(config=config, accelerator=ACCELERATOR)
    assert "metadata" in model.required_fields
    meta = json.dumps({"anchor_image": str(anchor)})
    samples = [{"prompt": "p", "image": gray_pil(g), "unique_id": "u", "metadata": meta} for g in (50, 150)]
    per_rank = flow_factory_groupwise(model, [samples[:1], samples[1:]])
    assert torch.cat(per_rank).tolist() == pytest.approx([-0.1, 1.0])


def test_async_reward_buffer_judges_each_group_as_it_completes(start_service):
    """``async_reward: true``: groups are judged on Flow-Factory's worker thread, each as soon as its
    k samples are sampled, while sampling goes on; the rewards equal the synchronous path's."""
    service = start_service(closest_to_source_wins)
    config = reward_arguments(service.url, samples_per_prompt=2, task="edit")
    config.async_reward = True
    model = flow_factory.ArrpoReward(config=config, accelerator=ACCELERATOR)
    meta = json.dumps({"caption": "from the dataset"})  # every sample carries its metadata here
    samples = [{"prompt": "match it", "image": gray_pil(g), "unique_id": uid, "metadata": meta,
                "condition_images": [gray_pil(source)], "latents": object()}
               for uid, source in (("a", 0), ("b", 255), ("c", 0)) for g in (10, 200)]
    judged_by_batch = []

    def sampled(number):  # the main thread's next rollout; what the service had judged by then
        judged_by_batch.append(len(service.vlm.seen))

    batches = [samples[0:3], samples[3:5], samples[5:6]]  # group b completes in batch 2, c in 3
    rewards = flow_factory_async_rewards(model, batches, group_size=2, on_sampled=sampled)
    assert rewards.tolist() == pytest.approx([1.0, -0.1, -0.1, 1.0, 1.0, -0.1])
    assert set(model.calls_on) == {"reward-buffer-worker"} and len(model.calls_on) == 3
    assert len(service.vlm.seen) == 3  # one pair per group, each judged once
    assert all(len(request.image_bytes) == 3 for request in service.vlm.seen)  # with its source
    sync = flow_factory_groupwise(flow_factory.ArrpoReward(config=reward_arguments(service.url, task="edit"),
                                                           accelerator=ACCELERATOR), [samples[:4], samples[4:]])
    assert torch.cat(sync).tolist() == pytest.approx(rewards.tolist())


def test_async_reward_buffer_failure_surfaces_on_the_main_thread_or_is_masked(start_service):
    from arrpo.client import RewardServiceError

    down = "http://127.0.0.1:9"  # no reward service there
    config = reward_arguments(down, max_retries=0)
    config.async_reward = True
    samples = [{"prompt": "p", "image": gray_pil(g), "unique_id": "u"} for g in (10, 200)]
    model = flow_factory.ArrpoReward(config=config, accelerator=ACCELERATOR)
    with pytest.raises(RuntimeError, match="worker thread failed") as caught:
        flow_factory_async_rewards(model, [samples, []], group_size=2)
    assert isinstance(caught.value.__cause__, RewardServiceError) and caught.value.__cause__.code == "unreachable"
    masked = flow_factory.ArrpoReward(config=reward_arguments(down, max_retries=0, on_failure="mask", host_std="group"),
                                      accelerator=ACCELERATOR)
    assert flow_factory_async_rewards(masked, [samples], group_size=2).tolist() == [0.0, 0.0]
    assert masked.scorer.stats["failed_groups"] == 1


def test_standalone_reward_has_the_torch_device_the_async_buffer_reads(service):
    """Without Flow-Factory the stand-in base gives ``.device`` as torch does (the buffer reads
    ``.device.type`` of every reward), also from a plain config."""
    plain = SimpleNamespace(extra_kwargs={"url": service.url})  # no device, no dtype
    model = flow_factory.ArrpoReward(config=plain, accelerator=None)
    assert model.device == torch.device("cpu") and model.device.type == "cpu"
    named = flow_factory.ArrpoReward(config=SimpleNamespace(extra_kwargs={"url": service.url}, device="cuda"),
                                     accelerator=ACCELERATOR)
    assert named.device == torch.device("cpu")  # "cuda" means the accelerator's device, as in Flow-Factory
    samples = [{"prompt": "p", "image": gray_pil(g), "unique_id": "u"} for g in (10, 200)]
    assert flow_factory_async_rewards(model, [samples], group_size=2).tolist() == pytest.approx([-0.1, 1.0])


def test_batch_std_default_says_at_start_up_what_a_masked_sample_will_do(service, caplog):
    """The refusal is announced once when the reward is built, with the settings that avoid it."""
    with caplog.at_level(logging.WARNING, logger="arrpo.integrations"):
        flow_factory.ArrpoReward(config=reward_arguments(service.url), accelerator=ACCELERATOR)
    assert "host_std='batch'" in caplog.text and "advantage_aggregation: sum" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arrpo.integrations"):
        flow_factory.ArrpoReward(config=reward_arguments(service.url, host_std="group"), accelerator=ACCELERATOR)
    assert "host_std" not in caplog.text
