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


def test_dead_group_requests_warn_in_the_service_log(start_service, caplog):
    """A VLM that answers 500 to every call: each window of group requests (64 samples) with most
    samples masked logs a WARNING in arrpo serve's log, with the share and the commonest cause."""
    import logging

    caplog.set_level(logging.WARNING, logger="arrpo.integrations")
    service = start_service(lambda request: Reply(status=500), retries=0)
    body = {"prompt": "p", "images": [b64_png(g) for g in range(1, 17)], "order": "given"}
    for _ in range(4):  # 4 groups of 16: one window
        assert httpx.post(service.url + "/v1/group_rewards", json=body, timeout=60).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "dead window of group requests" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "64 of 64 samples (100%)" in warnings[0] and "server answered 500" in warnings[0]
    assert service.state.monitor.dead_steps == 1
