"""An inline rubric is text the service sends to the model with every pair: a 4 MB one (within the
body limit) must be refused with a 422 naming the field, not forwarded as a multi-megabyte prompt."""

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
        with ServerThread(create_app(backend, ServiceConfig(judge=JudgeSettings(order="given"), max_rubric_chars=2000))) as thread:
            yield thread, vlm


def rubric(themes: int) -> dict:
    return {"themes": [{"theme": f"theme {i}", "tips": ["the image matches the prompt closely"] * 5}
                       for i in range(themes)]}


def test_an_oversized_inline_rubric_is_refused_before_any_model_call(service):
    thread, vlm = service
    before = vlm.requests
    for path, body in [
        ("/v1/compare", {"prompt": "a cat", "image_a": b64_png(10), "image_b": b64_png(200)}),
        ("/v1/group_rewards", {"prompt": "a cat", "images": [b64_png(10), b64_png(200)]}),
    ]:
        response = httpx.post(thread.url + path, json={**body, "rubric_inline": rubric(200)}, timeout=30)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["message"].startswith("rubric_inline:") and "2,000" in error["message"]
    assert vlm.requests == before


def test_a_rubric_within_the_limit_is_used(service):
    thread, _ = service
    body = {"prompt": "a cat", "image_a": b64_png(10), "image_b": b64_png(200), "rubric_inline": rubric(2)}
    response = httpx.post(thread.url + "/v1/compare", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["verdict"]["winner"] == "B" and response.json()["rubric"]["mode"] == "inline"


def test_the_limit_must_be_positive():
    with pytest.raises(ValueError, match="max_rubric_chars"):
        ServiceConfig(max_rubric_chars=0)
