"""Two byte-identical images carry no preference: the pair is a tie without asking the model (a real
VLM would answer with its position bias), and the group follows ``on_bad_verdict`` like any tie."""

from __future__ import annotations

import httpx
import pytest

from arrpo.judge_settings import JudgeSettings
from arrpo.server import ServerThread, ServiceConfig, create_app
from arrpo.testing.scripted_server import ScriptedVLMServer
from arrpo.vlm import build_backend
from tests.serve.helpers import b64_png, brighter_wins


@pytest.fixture(scope="module")
def service():
    with ScriptedVLMServer(brighter_wins) as vlm:
        backend = build_backend(vlm.base_url, "scripted", max_retries=0, cache_path=False)
        with ServerThread(create_app(backend, ServiceConfig(judge=JudgeSettings(order="given")))) as thread:
            yield thread, vlm


def post(url: str, path: str, body: dict) -> dict:
    response = httpx.post(url + path, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_identical_pair_is_a_tie_without_a_model_call(service):
    thread, vlm = service
    before = vlm.requests
    same = b64_png(90)
    verdict = post(thread.url, "/v1/compare", {"prompt": "a cat", "image_a": same, "image_b": same})["verdict"]
    assert verdict["winner"] == "tie" and "identical" in verdict["reason"]
    assert vlm.requests == before


def test_duplicates_in_a_group_follow_on_bad_verdict(service):
    thread, vlm = service
    images = [b64_png(50), b64_png(50), b64_png(200)]
    masked = post(thread.url, "/v1/group_rewards", {"prompt": "a cat", "images": images})
    assert masked["masked"] and masked["n_tie"] == 1 and masked["rewards"] == [0.0, 0.0, 0.0]
    before = vlm.requests
    dropped = post(thread.url, "/v1/group_rewards",
                   {"prompt": "a cat", "images": images, "on_bad_verdict": "drop_pair"})
    assert vlm.requests == before + 2  # only the two distinct pairs were judged
    assert not dropped["masked"] and dropped["n_tie"] == 1
    assert dropped["rewards"][2] == max(dropped["rewards"])  # the brighter image still wins
    assert dropped["rewards"][0] == dropped["rewards"][1]
