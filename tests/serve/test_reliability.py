"""The reward service under hostile answers and parameters (issue 10): never a 500 from a model
answer, reward parameters validated (422), authentication before the body is parsed, settings
refused at start, error kinds mapped to statuses, and Prometheus metrics by their stable names."""

from __future__ import annotations

import json

import httpx
import pytest

from arrpo.errors import HTTP_STATUS, ArrpoError
from arrpo.server import ServiceConfig
from arrpo.testing.scripted_server import Reply
from tests.serve.helpers import TOKEN, b64_png
from tests.serve.test_cli_serve import arrpo

GROUP = {"prompt": "p", "images": [b64_png(10), b64_png(120), b64_png(240)]}


def post_raw(service, path: str, raw: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(service.url + path, content=raw, timeout=30,
                      headers={"Content-Type": "application/json", **(headers or {})})


@pytest.mark.parametrize(("fields", "message"), [
    ('"win": NaN', "win"),
    ('"lose": NaN', "lose"),
    ('"win": Infinity', "win"),
    ('"lose": -Infinity', "lose"),
    ('"scale": NaN', "scale"),
    ('"win": "NaN"', "win"),
    ('"win": -1', "win + lose must be positive"),
    ('"win": 0.05, "lose": -0.1', "win + lose must be positive"),
    ('"win": 1.5e308, "lose": 1.5e308', "overflows"),
    ('"scale": 0', "scale"),
])
def test_bad_reward_parameters_are_422(service, fields, message):
    body = json.dumps(GROUP)[:-1] + ", " + fields + "}"
    response = post_raw(service, "/v1/group_rewards", body.encode())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and message in error["message"]
    assert service.vlm.requests == 0  # refused before any judging


def test_valid_unusual_reward_parameters_still_rank_the_winner_first(service):
    response = httpx.post(service.url + "/v1/group_rewards", timeout=30,
                          json={**GROUP, "win": -0.05, "lose": 0.1})  # loser -0.1 < winner -0.05
    assert response.status_code == 200
    rewards = response.json()["rewards"]
    assert rewards[2] > rewards[1] > rewards[0]


@pytest.mark.parametrize("answer", [
    '{"rank": [2, 1], "reason": "\\ud800 x"}',  # a lone surrogate: an emoji escape cut short
    '{"rank": [' + "9" * 5000 + ', 1], "reason": "huge"}',
    "[" * 50_000 + "]" * 50_000,
    "",
    "I cannot compare these images.",
    '{"rank": [1, 1], "reason": "tie"}',
    '{"rank": [3, 7], "reason": "out of range"}',
])
def test_no_answer_gives_a_500(start_service, answer):
    service = start_service(lambda request: Reply(text=answer))
    compare = httpx.post(service.url + "/v1/compare", timeout=60,
                         json={"prompt": "p", "image_a": b64_png(200), "image_b": b64_png(20), "order": "given"})
    assert compare.status_code == 200, compare.text
    compare.content.decode("utf-8")  # always valid UTF-8
    assert compare.json()["verdict"]["winner"] in ("A", "B", "tie", "invalid")
    group = httpx.post(service.url + "/v1/group_rewards", json=GROUP, timeout=60)
    assert group.status_code == 200, group.text
    data = group.json()
    assert len(data["pairs"]) == 3 and all(v is not None for v in data["rewards"])


def test_a_pair_that_fails_masks_its_group_instead_of_failing_the_request(service):
    """The judge's contract: a pair whose judging fails (here its backend call raises) is that
    pair's invalid verdict, and the group follows on_bad_verdict; the service does not re-wrap it."""
    import hashlib

    from tests.serve.helpers import png_bytes

    judge = service.state.judges["random"]
    original = judge.backend
    exploding_pair = {hashlib.sha256(png_bytes(gray)).hexdigest() for gray in (10, 240)}

    class Exploding:
        model_id = original.model_id

        async def complete(self, request):
            if {image.sha256 for message in request.messages for image in message.images} == exploding_pair:
                raise RuntimeError("backend exploded")
            return await original.complete(request)

        async def aclose(self):
            pass

    judge.backend = Exploding()
    try:
        response = httpx.post(service.url + "/v1/group_rewards", json=GROUP, timeout=30)
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["masked"] and data["mask"] == [False, False, False] and data["n_invalid"] == 1
        failed = next(p for p in data["pairs"] if (p["i"], p["j"]) == (0, 2))
        assert failed["verdict"]["winner"] == "invalid"
        assert "RuntimeError: backend exploded" in failed["verdict"]["invalid_reason"]
        dropped = httpx.post(service.url + "/v1/group_rewards", json={**GROUP, "on_bad_verdict": "drop_pair"},
                             timeout=30)
        assert dropped.status_code == 200 and not dropped.json()["masked"]
    finally:
        judge.backend = original


@pytest.fixture
def secured(start_service):
    return start_service(config=ServiceConfig(token=TOKEN))


def test_auth_is_checked_before_the_body_is_parsed(secured):
    malformed = b'{"prompt": "p", "images": [' + b"x" * (8 * 1024 * 1024)  # 8 MiB, not JSON
    response = post_raw(secured, "/v1/group_rewards", malformed)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    wrong = post_raw(secured, "/v1/compare", b"{not json", {"Authorization": "Bearer " + "x" * 30})
    assert wrong.status_code == 403
    text = httpx.post(secured.url + "/v1/compare", content=b"hello", headers={"Content-Type": "text/plain"})
    assert text.status_code == 401  # the content type is not even looked at
    right = post_raw(secured, "/v1/compare", b"{not json", {"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 400  # authenticated: now the body is read
    assert secured.vlm.requests == 0


@pytest.mark.parametrize(("options", "message"), [
    (["--max-pixels", "-5"], "--max-pixels"),
    (["--max-pending", "0"], "--max-pending"),
    (["--max-images", "1"], "--max-images"),
    (["--graceful-timeout", "-1"], "--graceful-timeout"),
])
def test_bad_settings_are_refused_at_start(options, message):
    result = arrpo("serve", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--port", "0", *options)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("settings", [
    {"max_pixels": -5}, {"max_pixels": 0}, {"max_pending": 0}, {"max_images": 1}, {"max_body_bytes": -1},
    {"judge": {"order": "sideways"}}, {"token": ""}, {"judge": {"temperature": -1}}, {"max_images": True},
    {"max_pending": "8"}, {"ordr": "given"},
])
def test_service_config_refuses_unworkable_settings(settings):
    with pytest.raises(ValueError) as caught:
        ServiceConfig(**settings)
    assert isinstance(caught.value, ArrpoError) and caught.value.kind == "config"
    message = str(caught.value)  # one line naming the setting (nested ones by their path)
    assert "\n" not in message and f"{'.'.join(_path(settings))}:" in message


def _path(settings: dict) -> list[str]:
    key, value = next(iter(settings.items()))
    return [key, *_path(value)] if isinstance(value, dict) else [key]


def test_error_kinds_map_to_statuses():
    """The status comes from the error's kind, not from words in its message."""
    import asyncio

    from fastapi.testclient import TestClient

    from arrpo.images import ImageError
    from arrpo.server import create_app
    from arrpo.vlm import build_backend

    app = create_app(build_backend("http://127.0.0.1:9/v1", "m", cache_path=False), ServiceConfig())

    @app.get("/kind-probe/{kind}")
    async def probe(kind: str):
        await asyncio.sleep(0)
        raise ImageError("decompression bomb!", kind=kind)  # the words must not matter

    with TestClient(app) as client:
        for kind in ("not_found", "too_large", "bad_input", "corrupt_image", "backend_unavailable"):
            response = client.get(f"/kind-probe/{kind}")
            assert response.status_code == HTTP_STATUS[kind]
            assert response.json()["error"]["code"] == kind


def test_metrics_keep_their_names(service):
    httpx.post(service.url + "/v1/compare", json={"prompt": "p", "image_a": b64_png(200), "image_b": b64_png(2)})
    text = httpx.get(service.url + "/metrics").text
    for name in ("arrpo_requests_total", "arrpo_request_duration_seconds_bucket", "arrpo_request_duration_seconds_sum",
                 "arrpo_request_duration_seconds_count", "arrpo_verdicts_total", "arrpo_rejected_total",
                 "arrpo_prompt_rubric_cache_total", "arrpo_backend_requests_total", "arrpo_backend_errors_total",
                 "arrpo_backend_cache_hits_total", "arrpo_backend_tokens_total", "arrpo_in_flight_calls",
                 "arrpo_capacity_calls", "arrpo_uptime_seconds"):
        assert f"\n{name}" in text or text.startswith(name), name
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    assert samples['arrpo_requests_total{endpoint="/v1/compare",status="200"}'] == 1
    assert samples['arrpo_verdicts_total{winner="A"}'] == 1
    assert samples['arrpo_rejected_total{reason="saturated"}'] == 0
    assert samples["arrpo_backend_requests_total"] == 1
    assert samples["arrpo_capacity_calls"] == 64
    assert "# TYPE arrpo_requests_total counter" in text
    assert "# TYPE arrpo_request_duration_seconds histogram" in text
