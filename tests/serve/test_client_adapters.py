"""The Python client (sync and async) and the trainer adapters, against the running service."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

from arrpo.client import AsyncRewardClient, RewardClient, RewardServiceError
from arrpo.integrations.flow_factory import ArrpoGroupwiseReward
from arrpo.integrations.flow_grpo import ArrpoRewardFn, make_reward_fn
from arrpo.integrations.groups import plan_groups
from arrpo.server import ServiceConfig
from arrpo.testing.scripted_server import Reply
from tests.serve.helpers import TOKEN, brightness, png_bytes, slow_brighter_wins


def gray(value: int, size: int = 8) -> Image.Image:
    return Image.new("RGB", (size, size), (value, value, value))


def test_sync_client(service, tmp_path):
    path = tmp_path / "bright.png"
    path.write_bytes(png_bytes(250))
    with RewardClient(service.url) as client:
        assert client.health().status == "ok"
        result = client.compare("p", gray(10), path, order="both", id="c1")  # a client-side path is read locally
        assert result.verdict.winner == "B" and result.id == "c1" and result.verdict.orders_agree
        group = client.group_rewards("p", [gray(10), gray(200), png_bytes(100)], preset="symmetric")
        assert group.rewards == pytest.approx([-1.0, 1.0, 0.0])
        with pytest.raises(RewardServiceError) as caught:
            client.group_rewards("p", [gray(1)])
        assert caught.value.status == 422 and "images" in caught.value.message


def test_async_client(service):
    async def run():
        async with AsyncRewardClient(service.url) as client:
            health = await client.health()
            results = await asyncio.gather(*(client.compare("p", gray(200), gray(k)) for k in range(0, 100, 20)))
            group = await client.group_rewards("p", [gray(5), gray(50)], source=gray(0), task="edit")
            return health, results, group

    health, results, group = asyncio.run(run())
    assert health.status == "ok"
    assert [r.verdict.winner for r in results] == ["A"] * 5
    assert group.rewards == pytest.approx([-0.1, 1.0])


def test_client_token_and_auth_errors(start_service):
    service = start_service(config=ServiceConfig(token=TOKEN))
    with RewardClient(service.url, token=TOKEN) as client:
        assert client.compare("p", gray(1), gray(2)).verdict.winner == "B"
    wrong = RewardClient(service.url, token="not-the-right-token")
    with wrong, pytest.raises(RewardServiceError) as caught:
        wrong.compare("p", gray(1), gray(2))
    assert caught.value.status == 403 and caught.value.code == "forbidden"


def test_client_retries_503_after_retry_after(start_service):
    service = start_service(slow_brighter_wins(0.3), concurrency=1, config=ServiceConfig(max_pending=1))
    results: list = []
    errors: list = []

    def call(client: RewardClient) -> None:
        try:
            results.append(client.compare("p", gray(200), gray(1), order="given"))
        except RewardServiceError as exc:
            errors.append(exc)

    patient = RewardClient(service.url, max_retries=5)
    threads = [threading.Thread(target=call, args=(patient,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and [r.verdict.winner for r in results] == ["A"] * 3
    assert service.state.gate.rejected > 0  # the retries were exercised

    impatient = RewardClient(service.url, max_retries=0)
    threads = [threading.Thread(target=call, args=(impatient,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors and all(e.status == 503 and e.retry_after >= 1 for e in errors)


def test_plan_groups():
    assert plan_groups(["a", "b", "a", "c", "b"]) == [[0, 2], [1, 4], [3]]
    assert plan_groups(["a"] * 4, group_size=2) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="multiple"):
        plan_groups(["a"] * 3, group_size=2)


def batch_grays() -> tuple[list[int], list[str]]:
    # two prompts interleaved, two samples each, plus a prompt with a single sample
    return [30, 220, 240, 10, 99], ["cat", "dog", "cat", "dog", "lonely"]


def expected_scores() -> list[float]:
    return [-0.1, 1.0, 1.0, -0.1, 0.0]


def test_flow_grpo_reward_fn_with_pil(service):
    grays, prompts = batch_grays()
    reward_fn = ArrpoRewardFn(service.url)
    scores, info = reward_fn([gray(g) for g in grays], prompts, metadata=[{}] * 5)
    assert scores == pytest.approx(expected_scores())
    assert info["mask"] == [True, True, True, True, False]
    assert info["groups"] == [[0, 2], [1, 3], [4]] and info["masked_groups"] == 1
    assert sum(info["verdicts"].values()) == 2 and not info["errors"]


def test_flow_grpo_reward_fn_with_numpy_nhwc(service):
    np = pytest.importorskip("numpy")
    grays, prompts = batch_grays()
    batch = np.stack([np.full((8, 8, 3), g, dtype=np.uint8) for g in grays])
    scores, _ = make_reward_fn(service.url)(batch, prompts)
    assert scores == pytest.approx(expected_scores())


def test_flow_grpo_reward_fn_with_torch_nchw_and_advantages(service):
    torch = pytest.importorskip("torch")
    grays, prompts = batch_grays()
    batch = torch.stack([torch.full((3, 8, 8), g / 255.0) for g in grays])
    scores, info = ArrpoRewardFn(service.url, score="advantage", preset="zscore")(batch, prompts)
    assert scores[0] < 0 < scores[2] and scores[3] < 0 < scores[1] and scores[4] == 0.0
    assert info["rewards"] == pytest.approx([0.0, 1.0, 1.0, 0.0, 0.0])


def test_flow_grpo_reward_fn_for_edits_sends_the_source(service):
    reward_fn = ArrpoRewardFn(service.url, group_size=2)
    scores, _ = reward_fn([gray(10), gray(90)], ["brighten", "brighten"], ref_images=[gray(50), gray(50)])
    assert scores == pytest.approx([-0.1, 1.0])
    assert len(service.vlm.seen[-1].image_bytes) == 3 and "Image BASE" in service.vlm.seen[-1].text


def test_flow_grpo_reward_fn_when_the_service_is_down():
    reward_fn = ArrpoRewardFn("http://127.0.0.1:9", timeout=2)
    scores, info = reward_fn([gray(1), gray(2)], ["p", "p"])
    assert scores == [0.0, 0.0] and info["mask"] == [False, False] and info["errors"]
    with pytest.raises(httpx.HTTPError):
        ArrpoRewardFn("http://127.0.0.1:9", timeout=2, raise_on_error=True)([gray(1), gray(2)], ["p", "p"])


def test_flow_factory_groupwise_reward(service):
    torch = pytest.importorskip("torch")
    config = SimpleNamespace(arrpo_url=service.url, arrpo_preset="symmetric")
    model = ArrpoGroupwiseReward(config, accelerator=None)
    output = model(prompt=["p"] * 3, image=[gray(100), gray(250), gray(5)])
    assert isinstance(output.rewards, torch.Tensor)
    assert output.rewards.tolist() == pytest.approx([0.0, 1.0, -1.0])
    tensors = [torch.full((3, 8, 8), v) for v in (0.9, 0.1)]
    edit = model(prompt=["x", "x"], image=tensors, condition_images=[[gray(3)], [gray(3)]])
    assert edit.rewards.tolist() == pytest.approx([1.0, -1.0])
    assert edit.extra["mask"] == [True, True]
    with pytest.raises(ValueError, match="no reward service URL"):
        ArrpoGroupwiseReward(SimpleNamespace())


def closest_to_source_wins(request):
    """An edit judge: the candidate whose brightness is nearer the source image's wins."""
    source, first, second = (brightness(image) for image in request.images()[-3:])
    rank = [1, 2] if abs(first - source) <= abs(second - source) else [2, 1]
    return Reply(text=json.dumps({"rank": rank, "reason": "closer to the source"}))


def test_adapters_group_edits_by_source_image(start_service):
    """Same instruction, different source images: separate groups, each judged against its own source."""
    service = start_service(closest_to_source_wins)
    images = [gray(10), gray(200), gray(10), gray(200)]
    sources = [gray(0), gray(0), gray(255), gray(255)]
    scores, info = ArrpoRewardFn(service.url)(images, ["match it"] * 4, ref_images=sources)
    assert info["groups"] == [[0, 1], [2, 3]]
    assert scores == pytest.approx([1.0, -0.1, -0.1, 1.0])
    assert plan_groups(["p", "p", "p"], sources=["s", "t", "s"]) == [[0, 2], [1]]
    with pytest.raises(ValueError, match="do not share one prompt and source"):
        plan_groups(["p"] * 4, group_size=2, sources=["s", "t", "s", "s"])


@pytest.mark.parametrize("retry_after", ["-5", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_client_survives_odd_retry_after(retry_after):
    """A proxy's odd Retry-After on 503 is retried promptly, then the 503 is reported (no crash)."""
    calls = []

    def saturated(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, headers={"Retry-After": retry_after},
                              json={"error": {"status": 503, "code": "saturated", "message": "busy"}})

    with RewardClient("http://reward.test", max_retries=2, max_wait=0.05) as client:
        client._http = httpx.Client(base_url="http://reward.test", transport=httpx.MockTransport(saturated))
        with pytest.raises(RewardServiceError) as caught:
            client.compare("p", gray(1), gray(2))
    assert caught.value.status == 503 and len(calls) == 3
