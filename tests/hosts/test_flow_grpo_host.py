"""Flow-GRPO, driven as its own train and eval loops drive a reward (tests/hosts/flow_grpo_host.py):
one row of issue 20's table per test, plus the masked-value rule proved with its own
``PerPromptStatTracker``."""

from __future__ import annotations

import json
import logging
import socket
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arrpo.client import RewardServiceError  # noqa: E402
from arrpo.errors import RunFailedError  # noqa: E402
from arrpo.integrations.flow_grpo import ArrpoRewardFn, with_arrpo  # noqa: E402
from arrpo.integrations.groups import RewardGroupError  # noqa: E402
from arrpo.server import ServerThread, ServiceConfig, create_app  # noqa: E402
from arrpo.vlm import build_backend  # noqa: E402
from tests.hosts import flow_grpo_host as host  # noqa: E402
from tests.hosts.judges import garbage, http_500, invalid_when, official  # noqa: E402
from tests.integrations.trainers import gray_tensor  # noqa: E402


def batch(prompts: list[str], grays: list[int], ref_images=None):
    return (gray_tensor(grays), prompts, [{} for _ in prompts], ref_images)


@pytest.fixture
def env(monkeypatch, service):
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    monkeypatch.delenv("ARRPO_REWARD_OPTIONS", raising=False)
    return service


def options(monkeypatch, **values) -> None:
    monkeypatch.setenv("ARRPO_REWARD_OPTIONS", json.dumps(values))


# ------------------------------------------------------------------ row 1: released multi_score
@pytest.mark.parametrize("multi_score", [host.released_multi_score, host.current_multi_score])
def test_arrpo_mixed_with_jpeg_compressibility_in_the_released_multi_score(env, monkeypatch, multi_score):
    options(monkeypatch, samples_per_prompt=4)
    reward_fn = with_arrpo(multi_score)("cpu", {"arrpo": 1.0, "jpeg_compressibility": 0.5})
    prompts = ["a cat"] * 4 + ["a dog"] * 4
    grays = [30, 200, 90, 10, 250, 120, 160, 60]
    rewards = host.sample_epoch(reward_fn, [batch(prompts, grays)])
    jpeg = host.jpeg_compressibility()(gray_tensor(grays), prompts, None)[0]
    expected_arrpo = official(grays[:4]) + official(grays[4:])
    assert rewards["arrpo"].tolist() == pytest.approx(expected_arrpo, abs=1e-6)
    assert rewards["jpeg_compressibility"].tolist() == pytest.approx(jpeg.tolist(), abs=1e-6)
    assert rewards["avg"].tolist() == pytest.approx([a + 0.5 * j for a, j in zip(expected_arrpo, jpeg, strict=True)], abs=1e-6)


# ------------------------------------------------------- row 2: masked samples never train
def epoch_advantages(reward_fn, prompts, grays, *, global_std: bool) -> tuple[dict, np.ndarray]:
    rewards = host.sample_epoch(reward_fn, [batch(prompts, grays)])
    return rewards, host.advantages(prompts, rewards["avg"], global_std=global_std)


def test_a_sample_without_any_valid_comparison_gets_zero_advantage_and_moves_no_other_group(
    start_service, monkeypatch
):
    """drop_pair, k = 4: every comparison of gray 90 is unreadable, so the service masks it. Under
    PerPromptStatTracker's per-prompt std its advantage is 0 and the other prompt's advantages are
    those of a step without the masked group."""
    service = start_service(invalid_when({90}))
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    options(monkeypatch, samples_per_prompt=4, on_bad_verdict="drop_pair")
    reward_fn = with_arrpo(host.released_multi_score)("cpu", {"arrpo": 1.0})
    prompts = ["a cat"] * 4 + ["a dog"] * 4
    grays = [30, 200, 90, 10, 250, 120, 160, 60]
    _, adv = epoch_advantages(reward_fn, prompts, grays, global_std=False)
    assert np.all(adv[:4] == 0.0)  # the masked sample, and its group with it: no signal at all
    reference = host.advantages(prompts[4:], torch.tensor(official(grays[4:])), global_std=False)
    assert adv[4:] == pytest.approx(reference, rel=1e-6)


def test_a_24_sample_group_split_12_12_with_one_invalid_pair_trains_no_zeros(start_service, monkeypatch):
    """k = 24 against --max-images 12 with split_large_groups: one half has an invalid pair and is
    masked by the service, so the whole group is masked. Its samples get the std-preserving fill
    (host_std='batch', the default): zero advantage, and the other group's advantages are those of
    an epoch without the masked group under both of the tracker's std settings."""
    grays = list(range(10, 250, 10))  # 24 distinct grays
    service = start_service(invalid_when({grays[0]}), config=ServiceConfig(max_images=12))
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    options(monkeypatch, samples_per_prompt=24, split_large_groups=True, idle_timeout=0.5)
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
    other = [5 + 10 * k for k in range(24)]
    prompts = ["a cat"] * 24 + ["a dog"] * 24
    for global_std in (False, True):
        rewards, adv = epoch_advantages(reward_fn, prompts, grays + other, global_std=global_std)
        assert np.all(adv[:24] == 0.0), "a masked half trained"
        assert len(set(rewards["avg"][:24].tolist())) == 1  # one value for the masked group
        dog = adv[24:]
        halves = official(other[:12]) + official(other[12:])
        reference = host.advantages(prompts[24:], torch.tensor(halves), global_std=global_std)
        assert dog == pytest.approx(reference, rel=1e-5, abs=1e-6)  # float32 rounding of the fill only
        assert np.count_nonzero(dog[:, 0]) == 24


# -------------------------------------------------------------- row 3: no silent dead step
@pytest.mark.parametrize("answer", [http_500, garbage], ids=["vlm-500", "garbage"])
def test_a_dead_step_warns_every_step_and_a_run_of_them_fails(start_service, monkeypatch, caplog, answer):
    service = start_service(answer)
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    options(monkeypatch, samples_per_prompt=2)  # default: 3 dead steps in a row fail the run
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
    prompts = ["a", "a", "b", "b"]
    with caplog.at_level(logging.WARNING, logger="arrpo"):
        for step in range(2):
            rewards = host.sample_epoch(reward_fn, [batch(prompts, [10, 20, 30, 40])])
            assert rewards["avg"].tolist() == [0.0] * 4
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "no training signal" in r.getMessage()]
            assert len(warnings) == step + 1
            assert "100%" in warnings[-1].getMessage() and "most common cause" in warnings[-1].getMessage()
        with pytest.raises(RunFailedError, match="3 steps in a row"):
            host.sample_epoch(reward_fn, [batch(prompts, [10, 20, 30, 40])])


# --------------------------------------------------- row 4: groups complete across batches
def test_the_new_sampler_spreads_k_16_over_two_batches_and_rewards_equal_whole_group_judging(env, monkeypatch):
    options(monkeypatch, samples_per_prompt=16)
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
    prompts = [f"prompt {i}" for i in range(5)]
    grays = {p: [7 + 15 * k + i for k in range(16)] for i, p in enumerate(prompts)}
    for epoch in range(2):
        iterations = host.new_sampler_epoch(len(prompts), batch=8, k=16, m=1, ranks=1, epoch=epoch)
        assert len(iterations) == 2
        seen: dict[str, int] = {}
        batches, rows = [], []
        for it in iterations:
            names = [prompts[i] for i in it[0]]
            values = []
            for name in names:
                values.append(grays[name][seen.get(name, 0)])
                seen[name] = seen.get(name, 0) + 1
            batches.append(batch(names, values))
            rows += list(zip(names, values, strict=True))
        rewards = host.sample_epoch(reward_fn, batches)
        expected = {}
        for name in {n for n, _ in rows}:
            expected.update(dict(zip(grays[name], official(grays[name]), strict=True)))
        assert rewards["avg"].tolist() == pytest.approx([expected[g] for _, g in rows], abs=1e-6)


def test_without_samples_per_prompt_flow_grpo_refuses_rather_than_judge_fragments(env):
    with pytest.raises(ValueError, match="samples_per_prompt"):
        with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})


def test_more_batches_per_group_than_the_hosts_eight_workers(env, monkeypatch):
    """k = 16 in 16 batches of one: more reward calls wait for the group than Flow-GRPO's pool
    has workers; the values are read after sampling, so nothing deadlocks."""
    options(monkeypatch, samples_per_prompt=16)
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
    grays = [12 * k + 3 for k in range(16)]
    rewards = host.sample_epoch(reward_fn, [batch(["p"], [g]) for g in grays])
    assert rewards["avg"].tolist() == pytest.approx(official(grays), abs=1e-6)


def test_a_group_left_incomplete_at_the_end_of_sampling_fails_loudly(env, monkeypatch):
    options(monkeypatch, samples_per_prompt=4, idle_timeout=1.0)
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
    with pytest.raises(RewardGroupError, match="2 of 4 samples"):
        host.sample_epoch(reward_fn, [batch(["p", "p"], [10, 20])])
    before = len(env.vlm.seen)
    rewards = host.sample_epoch(reward_fn, [batch(["q"] * 4, [10, 20, 30, 40])])  # the next epoch is clean
    assert rewards["avg"].tolist() == pytest.approx(official([10, 20, 30, 40]), abs=1e-6)
    assert len(env.vlm.seen) == before + 6


# ------------------------------------------- row 6: service limits are facts (outage at start)
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("split", [False, True])
def test_a_service_down_for_a_moment_at_the_first_call_is_read_again(scripted_server, monkeypatch, split):
    from tests.serve.helpers import brighter_wins

    port = free_port()
    vlm = scripted_server(brighter_wins)
    backend = build_backend(vlm.base_url, "scripted", max_concurrency=16, max_retries=0, cache_path=False)
    app = create_app(backend, ServiceConfig(max_images=24))
    server = ServerThread(app, port=port)
    starter = threading.Timer(1.5, server.start)
    monkeypatch.setenv("ARRPO_SERVICE_URL", f"http://127.0.0.1:{port}")
    options(monkeypatch, samples_per_prompt=24, split_large_groups=split, backoff=0.2)
    starter.start()
    try:
        reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
        grays = [9 * k + 4 for k in range(24)]
        rewards = host.sample_epoch(reward_fn, [batch(["p"] * 24, grays)])
        assert rewards["avg"].tolist() == pytest.approx(official(grays), abs=1e-6)  # one group of 24, not 12 + 12
        assert len(vlm.seen) == 24 * 23 // 2
    finally:
        starter.join()
        server.stop(timeout=10)


# ------------------------------------------------------------- row 7: eval on distinct prompts
def test_eval_on_distinct_prompts_gives_finite_means_and_no_marker_in_avg(env, monkeypatch):
    options(monkeypatch, samples_per_prompt=4)
    multi_score = with_arrpo(host.current_multi_score)
    eval_reward_fn = multi_score("cpu", {"arrpo": 1.0, "jpeg_compressibility": 0.5})
    prompts = [f"test prompt {i}" for i in range(6)]
    first = [batch(prompts[:3], [100, 100, 100]), batch(prompts[3:], [100, 100, 100])]
    means = host.evaluate(eval_reward_fn, first)
    assert means["arrpo"] == pytest.approx(0.5)  # the first evaluation is the anchor of later ones
    later = [batch(prompts[:3], [200, 10, 200]), batch(prompts[3:], [200, 200, 10])]
    means = host.evaluate(eval_reward_fn, later)
    assert means["arrpo"] == pytest.approx(4 / 6)  # win rate against the first evaluation
    assert all(np.isfinite(v) for v in means.values())
    details, _ = eval_reward_fn(*later[0][:3], only_strict=False)
    jpeg = host.jpeg_compressibility()(later[0][0], prompts[:3], None)[0]
    assert list(details["avg"]) == pytest.approx([1.0 * a + 0.5 * j for a, j in zip(details["arrpo"], jpeg, strict=True)])


def test_eval_with_an_unreadable_judge_marks_no_value_and_never_sums_it(start_service, monkeypatch):
    service = start_service(garbage)
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    options(monkeypatch, samples_per_prompt=4)
    eval_reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0, "jpeg_compressibility": 0.5})
    prompts = ["x", "y"]
    host.evaluate(eval_reward_fn, [batch(prompts, [100, 100])])  # anchors
    details, _ = eval_reward_fn(gray_tensor([10, 200]), prompts, [{}, {}], only_strict=False)
    assert list(details["arrpo"]) == [host.NO_VALUE] * 2 and list(details["avg"]) == [host.NO_VALUE] * 2


# --------------------------------------------------------------------------- plain failures
def test_service_down_fails_the_step_after_the_retry_budget(monkeypatch):
    monkeypatch.setenv("ARRPO_SERVICE_URL", "http://127.0.0.1:9")
    options(monkeypatch, samples_per_prompt=2, max_retries=1, backoff=0.01)
    with pytest.raises(RewardServiceError) as caught:
        reward_fn = ArrpoRewardFn()
        host.sample_epoch(reward_fn, [batch(["p", "p"], [1, 2])])
    assert caught.value.code == "unreachable"


def test_host_timing_does_not_matter(env, monkeypatch):
    """Sampling slower than judging, and judging slower than sampling, give the same rewards."""
    options(monkeypatch, samples_per_prompt=4)
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0})
    grays = [10, 20, 30, 40]
    batches = [batch(["p", "p"], grays[:2]), batch(["p", "p"], grays[2:])]
    fast = host.sample_epoch(reward_fn, batches)
    slow = host.sample_epoch(reward_fn, batches, sampling_seconds=0.05)
    assert fast["avg"].tolist() == pytest.approx(official(grays), abs=1e-6)
    assert slow["avg"].tolist() == pytest.approx(official(grays), abs=1e-6)


# ------------------------------------------- masked samples beside Flow-GRPO's own rewards
def test_a_masked_sample_beside_other_rewards_fails_under_the_batch_std_and_is_exact_per_group(
    start_service, monkeypatch
):
    """avg = arrpo + 0.5·jpeg: under host_std='batch' (default) arrpo cannot see the other ranks'
    jpeg values, so the step fails naming global_std; with host_std='group' a masked group's avg is
    0.0 throughout: zero advantage, the other prompt unchanged under the per-prompt std."""
    service = start_service(invalid_when({90}))
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    prompts = ["a cat"] * 4 + ["a dog"] * 4
    grays = [30, 200, 90, 10, 250, 120, 160, 60]
    options(monkeypatch, samples_per_prompt=4, on_bad_verdict="drop_pair", idle_timeout=0.5)
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0, "jpeg_compressibility": 0.5})
    with pytest.raises(RewardGroupError, match="global_std = False"):
        host.sample_epoch(reward_fn, [batch(prompts, grays)])
    options(monkeypatch, samples_per_prompt=4, on_bad_verdict="drop_pair", host_std="group")
    reward_fn = with_arrpo(host.current_multi_score)("cpu", {"arrpo": 1.0, "jpeg_compressibility": 0.5})
    rewards, adv = epoch_advantages(reward_fn, prompts, grays, global_std=False)
    assert rewards["avg"][:4].tolist() == [0.0] * 4 and np.all(adv[:4] == 0.0)
    jpeg = host.jpeg_compressibility()(gray_tensor(grays[4:]), prompts[4:], None)[0]
    dog = [a + 0.5 * j for a, j in zip(official(grays[4:]), jpeg, strict=True)]
    assert adv[4:] == pytest.approx(host.advantages(prompts[4:], torch.tensor(dog), global_std=False), rel=1e-5)


def test_pointwise_mode_refuses_a_masked_sample(start_service, monkeypatch):
    service = start_service(invalid_when({90}))
    monkeypatch.setenv("ARRPO_SERVICE_URL", service.url)
    options(monkeypatch, mode="pointwise")
    reward = ArrpoRewardFn()
    images, prompts, _, _ = batch(["a cat"] * 2, [90, 30])
    anchors = [{"anchor_image": gray_tensor([200])[0]}] * 2
    with pytest.raises(RewardGroupError, match="mode='group'"):
        reward(images, prompts, anchors)
