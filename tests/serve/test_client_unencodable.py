"""Text UTF-8 cannot hold (a lone surrogate, e.g. from a prompt file read with surrogateescape) is
sent as a JSON ``\\u`` escape, so the service names the field in a 422 and the client raises its
documented ``RewardServiceError``, not a ``UnicodeEncodeError`` from inside the HTTP library."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from arrpo.client import AsyncRewardClient, RewardClient, RewardServiceError
from arrpo.judge_settings import JudgeSettings
from arrpo.server import ServerThread, ServiceConfig, create_app
from arrpo.testing.scripted_server import ScriptedVLMServer
from arrpo.vlm import build_backend
from tests.serve.helpers import brighter_wins

PROMPT = "a red \ud800 bicycle"


@pytest.fixture(scope="module")
def url():
    with ScriptedVLMServer(brighter_wins) as vlm:
        backend = build_backend(vlm.base_url, "scripted", max_retries=0, cache_path=False)
        with ServerThread(create_app(backend, ServiceConfig(judge=JudgeSettings(order="given")))) as thread:
            yield thread.url


def images() -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), (g, g, g)) for g in (40, 200)]


def check(error: RewardServiceError) -> None:
    assert (error.status, error.code) == (422, "invalid_request")
    assert "prompt" in error.message


def test_sync_client_reports_the_services_422(url):
    with RewardClient(url, max_retries=0) as client:
        with pytest.raises(RewardServiceError) as caught:
            client.group_rewards(PROMPT, images())
        check(caught.value)
        # ordinary non-ASCII text still arrives intact
        assert client.group_rewards("un vélo rouge, 赤い自転車", images()).rewards == [-0.1, 1.0]


def test_async_client_reports_the_services_422(url):
    async def run() -> RewardServiceError:
        async with AsyncRewardClient(url, max_retries=0) as client:
            try:
                await client.compare(PROMPT, *images())
            except RewardServiceError as exc:
                return exc
        raise AssertionError("no error")

    check(asyncio.run(run()))
