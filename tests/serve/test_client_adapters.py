"""The Python client (sync and async) against the running service (trainer adapters: tests/integrations)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from PIL import Image

from arrpo.client import AsyncRewardClient, RewardClient, RewardServiceError
from arrpo.server import ServiceConfig
from tests.serve.helpers import TOKEN, png_bytes, slow_brighter_wins


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


@pytest.mark.parametrize(("options", "message"), [
    ({"win": float("nan")}, "invalid group_rewards option(s): win: must be a finite number"),
    ({"win": 0.05, "lose": -0.1}, "win + lose must be positive"),
    ({"scale": 0.0}, "scale: must be positive"),
])
def test_client_checks_reward_options_by_the_services_rule(options, message):
    from arrpo.client import validate_options

    with pytest.raises(ValueError) as caught:
        validate_options("group_rewards", options)
    assert message in str(caught.value)
