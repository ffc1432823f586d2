"""Flow-Factory's remote reward models against ``arrpo serve`` (tests/hosts/ff_remote_host.py): the
user sets only ``server_url``. Group-wise (local and distributed) and point-wise, t2i and edits,
groups of 2, 4, 16 and 24, the errors the client shows, and the masked-value rule under
Flow-Factory's own advantage code."""

from __future__ import annotations

import json
import logging
import threading
from math import comb
from types import SimpleNamespace

import numpy as np
import pytest
import requests

torch = pytest.importorskip("torch")

from arrpo.server import ServiceConfig  # noqa: E402
from tests.hosts import ff_remote_host as remote  # noqa: E402
from tests.hosts import flow_factory_host as host  # noqa: E402
from tests.hosts.judges import invalid_when, official  # noqa: E402
from tests.integrations.trainers import closest_to_source_wins  # noqa: E402
from tests.serve.helpers import TOKEN, b64_png, slow_brighter_wins  # noqa: E402


def config(url: str, **extra) -> SimpleNamespace:
    """A reward entry's RewardArguments (server_url and friends land as attributes)."""
    return SimpleNamespace(server_url=url, batch_size=16, **extra)


def grays_for(k: int, offset: int = 0) -> list[int]:
    grays = [20 + (offset * 7 + 9 * i) % 230 for i in range(k)]
    assert len(set(grays)) == k
    return grays


def t2i(groups: dict[str, list[int]]) -> list:
    return [host.T2ISample(image=host.tensor_image(g), prompt=p) for p, grays in groups.items() for g in grays]


def by_prompt(samples, rewards) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for sample, value in zip(samples, rewards.tolist(), strict=True):
        out.setdefault(sample.prompt, []).append(value)
    return out


@pytest.mark.parametrize("k", [2, 4, 16, 24])
def test_groupwise_t2i_with_group_contiguous_equals_whole_group_judging(start_service, k):
    service = start_service(config=ServiceConfig(max_images=24))
    model = remote.RemoteGroupwiseRewardModel(config(f"{service.url}/flow-factory/{k}"))
    groups = {"a cat": grays_for(k), "a dog": grays_for(k, 5)} if k < 16 else {"a cat": grays_for(k)}
    samples = t2i(groups)
    got = by_prompt(samples, host.groupwise_local(model, samples))
    assert got == {p: pytest.approx(official(g), abs=1e-6) for p, g in groups.items()}
    assert service.vlm.requests == len(groups) * comb(k, 2)
    assert model.client.attempts == len(groups)  # one request per group, none retried


@pytest.mark.parametrize("k", [4, 24])
def test_groupwise_edits_send_the_source_and_are_judged_against_it(start_service, k):
    service = start_service(closest_to_source_wins, config=ServiceConfig(max_images=24))
    model = remote.RemoteGroupwiseRewardModel(config(f"{service.url}/flow-factory/{k}"))
    grays = grays_for(k)
    samples = [host.I2ISample(image=host.tensor_image(g), prompt="make it darker",
                              condition_images=[host.tensor_image(3)]) for g in grays]
    rewards = host.groupwise_local(model, samples).tolist()
    assert rewards == pytest.approx(official([-abs(g - 3) for g in grays]), abs=1e-6)


def test_groupwise_distributed_over_two_ranks_at_once_never_draws_a_503(start_service):
    service = start_service(config=ServiceConfig(max_pending=2))  # each group of 4 costs 6 judge calls
    model = remote.RemoteGroupwiseRewardModel(config(f"{service.url}/flow-factory/4"))
    groups = {f"prompt {p}": grays_for(4, p) for p in range(4)}
    samples = t2i(groups)
    ranks = [samples[r::2] for r in range(2)]
    gathered = host.gather_samples(ranks, list(model.required_fields))
    ids = np.array([s.unique_id for s in gathered])
    unique, inverse = np.unique(ids, return_inverse=True)
    rewards = torch.zeros(len(gathered))

    def rank_work(rank: int) -> None:  # rank r requests groups r, r + W, … one after another
        for g in range(rank, len(unique), 2):
            members = np.nonzero(inverse == g)[0]
            rewards[members] = host.compute_group(model, [gathered[i] for i in members])

    threads = [threading.Thread(target=rank_work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = {(s.prompt, round(float(s.image[0, 0, 0]) * 255)): v for s, v in zip(gathered, rewards.tolist(), strict=True)}
    for prompt, grays in groups.items():
        assert [got[(prompt, g)] for g in grays] == pytest.approx(official(grays), abs=1e-6)
    assert model.client.attempts == 4


def test_pointwise_works_with_whole_groups_per_batch_and_refuses_fragments_at_once(start_service):
    service = start_service()
    groups = {"a cat": grays_for(4), "a dog": grays_for(4, 3)}
    samples = t2i(groups)  # group_contiguous: each group's copies contiguous on the rank
    whole = remote.RemotePointwiseRewardModel(config(f"{service.url}/flow-factory/4"))
    got = by_prompt(samples, remote.pointwise_rewards(whole, samples, batch_size=8))
    assert got == {p: pytest.approx(official(g), abs=1e-6) for p, g in groups.items()}
    fragments = remote.RemotePointwiseRewardModel(config(f"{service.url}/flow-factory/4"))
    with pytest.raises(RuntimeError, match=r"Server error: 2 sample.*groups of 4.*multiple of 4"):
        remote.pointwise_rewards(fragments, samples, batch_size=2)
    assert fragments.client.attempts == 1  # not retried
    assert service.vlm.requests == 2 * comb(4, 2)


def test_the_root_url_passes_the_health_check_and_the_first_call_says_how_to_write_it(service):
    model = remote.RemoteGroupwiseRewardModel(config(service.url))
    with pytest.raises(RuntimeError, match=r"Server error: .*server_url: http://127\.0\.0\.1:\d+/flow-factory/<k>"):
        host.groupwise_local(model, t2i({"a cat": [30, 200]}))
    assert requests.get(f"{service.url}/health").json()["status"] == "ok"  # arrpo's own health, unchanged


def test_health_and_control_calls(start_service, caplog):
    service = start_service(config=ServiceConfig(max_images=16))
    ok = requests.get(f"{service.url}/flow-factory/16/health", timeout=5)
    assert ok.status_code == 200 and ok.json()["flow_factory"] == {"group_size": 16, "problem": None}
    caplog.set_level(logging.WARNING, logger="arrpo.server")
    too_big = requests.get(f"{service.url}/flow-factory/24/health", timeout=5)
    assert too_big.ok and "--max-images 24" in too_big.json()["flow_factory"]["problem"]
    assert any("--max-images 24" in r.getMessage() for r in caplog.records)
    client = remote.RemoteRewardClient(f"{service.url}/flow-factory/16")
    assert client._post_control("load") is True and client._post_control("offload") is True
    model = remote.RemoteGroupwiseRewardModel(config(f"{service.url}/flow-factory/24"))
    with pytest.raises(RuntimeError, match="restart it with --max-images 24"):
        host.groupwise_local(model, t2i({"a cat": grays_for(24)}))


@pytest.mark.parametrize(("payload", "words"), [
    ({"prompt": ["a cat", "a cat"], "image": ["not base64 at all!", b64_png(9)]}, "bad_base64: images.0"),
    ({"prompt": ["a cat", "a cat"], "image": [b64_png(9)]}, "2 prompts but 1 images"),
    ({"prompt": "a cat", "image": [b64_png(9), b64_png(20)]}, "malformed request: prompt"),
    ({"prompt": ["a cat", "a cat"], "image": None}, "no 'image'"),
    ({"prompt": ["a cat", "a cat"], "video": [[b64_png(9)]], "image": [b64_png(9), b64_png(20)]}, "video"),
    ({"prompt": ["a cat", "a cat"], "image": [b64_png(9), b64_png(20)], "condition_images": [[b64_png(1)]]},
     "2 prompts but 1 condition image lists"),
    ([1, 2], "JSON object"),
    ({"prompt": [f"p{i}" for i in range(65) for _ in range(2)], "image": [b64_png(9), b64_png(20)] * 65},
     "65 groups in one request"),
])
def test_bad_input_is_answered_in_the_protocols_error_form(service, payload, words):
    client = remote.RemoteRewardClient(f"{service.url}/flow-factory/2")
    with pytest.raises(RuntimeError, match=f"Server error: .*{words}"):
        client.post_payload(payload)
    assert client.attempts == 1


def test_unparsable_and_huge_bodies_are_answered_in_the_error_form(start_service):
    service = start_service(config=ServiceConfig(max_body_bytes=20_000))
    url = f"{service.url}/flow-factory/2/compute"
    for body in (b"{not json", b"[" * 50_000 + b"]" * 50_000, b'{"prompt": [' + b"9" * 5000 + b"]}"):
        answer = requests.post(url, data=body[:19_000], headers={"Content-Type": "application/json"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["rewards"] == []
        assert "not valid JSON" in answer.json()["error"]
    big = {"prompt": ["a cat", "a cat"], "image": [b64_png(9, (200, 200)), "A" * 30_000]}
    answer = requests.post(url, data=json.dumps(big), headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 200 and "20,000-byte limit" in answer.json()["error"]


def test_a_token_travels_as_url_user_info(start_service):
    service = start_service(config=ServiceConfig(token=TOKEN))
    host_port = service.url.removeprefix("http://")
    model = remote.RemoteGroupwiseRewardModel(config(f"http://arrpo:{TOKEN}@{host_port}/flow-factory/2"))
    assert host.groupwise_local(model, t2i({"a cat": [30, 200]})).tolist() == pytest.approx([-0.1, 1.0])
    for url, words in [(f"{service.url}/flow-factory/2", "unauthorized"),
                       (f"http://arrpo:{'x' * 24}@{host_port}/flow-factory/2", "forbidden")]:
        model = remote.RemoteGroupwiseRewardModel(config(url))  # /health needs no token
        with pytest.raises(RuntimeError, match=f"Server error: {words}"):
            host.groupwise_local(model, t2i({"a cat": [30, 200]}))
    assert service.vlm.requests == 1


def test_a_request_resent_after_the_clients_timeout_joins_the_judging_in_progress(start_service):
    service = start_service(slow_brighter_wins(0.5), concurrency=1)  # 6 pairs: about 3 s
    model = remote.RemoteGroupwiseRewardModel(config(f"{service.url}/flow-factory/4", timeout=2.0))
    grays = grays_for(4)
    assert host.groupwise_local(model, t2i({"a cat": grays})).tolist() == pytest.approx(official(grays), abs=1e-6)
    assert model.client.attempts >= 2  # the first attempt timed out
    assert service.vlm.requests == comb(4, 2)  # judged once


def test_a_masked_group_has_zero_advantage_under_flow_factorys_aggregations(start_service, caplog):
    service = start_service(invalid_when({77}))
    caplog.set_level(logging.WARNING, logger="arrpo.integrations")
    groups = {"a cat": [30, 77, 150, 220], "a dog": [40, 90, 160, 210], "a fox": [50, 100, 170, 230]}
    samples = t2i(groups)
    plain = remote.RemoteGroupwiseRewardModel(config(f"{service.url}/flow-factory/4"))  # Flow-Factory's defaults
    with pytest.raises(Exception, match="advantage_aggregation: sum"):
        host.groupwise_local(plain, samples)
    model = remote.RemoteGroupwiseRewardModel(config(f"{service.url}/flow-factory/4/group-std"))
    rewards = host.groupwise_local(model, samples).numpy().astype(np.float64)
    assert rewards[:4].tolist() == [0.0] * 4
    index = host.group_indices(samples)
    per_group = host.weighted_sum_advantages(rewards, index, global_std=False)
    alone = host.weighted_sum_advantages(rewards[4:], index[4:], global_std=False)
    assert per_group[:4].tolist() == [0.0] * 4 and np.array_equal(per_group[4:], alone)
    warnings = [r.getMessage() for r in caplog.records if "Flow-Factory request" in r.getMessage()]
    assert warnings and "4 of 4 samples (100%)" in warnings[0] and "invalid verdict" in warnings[0]
