"""A failing VLM backend (HTTP 500s, timeouts, dropped connections, garbage) gives `invalid`
verdicts with reasons and HTTP 200, never a 5xx from the service."""

from __future__ import annotations

import httpx
import pytest

from arrpo.testing.scripted_server import Reply
from tests.serve.helpers import b64_png

BODY = {"prompt": "p", "image_a": b64_png(200), "image_b": b64_png(20), "order": "given"}


@pytest.mark.parametrize(("reply", "reason"), [
    (Reply(status=500), "server answered 500"),
    (Reply(status=503, headers={"Retry-After": "0"}), "server answered 503"),
    (Reply(delay=2.0), "timed out"),
    (Reply(drop=True), "connection failed"),
    (Reply(text="no idea"), ""),
])
def test_backend_failure_is_an_invalid_verdict(start_service, reply, reason):
    service = start_service(lambda request: reply, timeout=0.5, retries=1)
    response = httpx.post(service.url + "/v1/compare", json=BODY, timeout=30)
    assert response.status_code == 200, response.text
    verdict = response.json()["verdict"]
    assert verdict["winner"] == "invalid"
    assert reason in verdict["invalid_reason"] and verdict["invalid_reason"]
    group = httpx.post(service.url + "/v1/group_rewards", json={
        "prompt": "p", "images": [b64_png(1), b64_png(2), b64_png(3)]}, timeout=30)
    assert group.status_code == 200
    data = group.json()
    assert data["masked"] and data["n_invalid"] == 3 and data["rewards"] == [0.0, 0.0, 0.0]
    assert all(p["verdict"]["invalid_reason"] for p in data["pairs"])
    metrics = httpx.get(service.url + "/metrics").text
    assert 'arrpo_verdicts_total{winner="invalid"} 4' in metrics
    if reason:
        assert "arrpo_backend_errors_total 4" in metrics
    assert httpx.get(service.url + "/health").json()["status"] == "ok"


def test_backend_recovers_after_failures(start_service):
    calls = {"n": 0}

    def flaky(request):
        calls["n"] += 1
        return Reply(status=500) if calls["n"] <= 2 else Reply(text='{"rank": [1, 2], "reason": "ok"}')

    service = start_service(flaky, retries=0)
    winners = [httpx.post(service.url + "/v1/compare", json=BODY, timeout=30).json()["verdict"]["winner"]
               for _ in range(3)]
    assert winners == ["invalid", "invalid", "A"]
