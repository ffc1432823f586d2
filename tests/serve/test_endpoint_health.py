"""Per-endpoint counts of a service whose VLM has several endpoints: ``/health`` (JSON) and
``/metrics`` (Prometheus, labelled by endpoint), through the app and through ``arrpo serve``."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx

from arrpo.server import ServerThread, ServiceConfig, create_app
from arrpo.testing.scripted_server import Reply
from arrpo.vlm import build_backend
from tests.backends.test_endpoint_pool import dead_url
from tests.serve.helpers import b64_png, brighter_wins
from tests.serve.test_cli_serve import ENV, free_port

BODY = {"prompt": "p", "image_a": b64_png(200), "image_b": b64_png(20), "order": "given"}


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (a missing sample fails the test)."""
    shown = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(shown)}\}} (\S+)$", metrics, re.MULTILINE)
    assert match, f"no sample {name}{{{shown}}} in:\n{metrics}"
    return float(match.group(1))


def test_health_and_metrics_count_each_endpoint(scripted_server):
    good = scripted_server(brighter_wins)
    failing = scripted_server(lambda request: Reply(status=500))
    dead = dead_url()
    backend = build_backend([good.base_url, failing.base_url, dead], "scripted", cache_path=False,
                            max_concurrency=2, max_retries=0, base_cooldown=30.0)
    app = create_app(backend, ServiceConfig())
    assert app.state.service.gate.backend_concurrency == 6  # three endpoints x 2 in flight
    with ServerThread(app) as service:
        winners = [httpx.post(service.url + "/v1/compare", json=BODY, timeout=30).json()["verdict"]["winner"]
                   for _ in range(6)]
        health = httpx.get(service.url + "/health").json()
        metrics = httpx.get(service.url + "/metrics").text
    assert winners == ["A"] * 6  # every request answered, by the one endpoint that works
    endpoints = {one["endpoint"]: one for one in health["endpoints"]}
    assert list(endpoints) == [good.base_url, failing.base_url, dead]
    assert endpoints[good.base_url] | {"mean_latency_s": None} == {
        "endpoint": good.base_url, "state": "up", "in_flight": 0, "requests": 6, "ok": 6, "failures": {},
        "cooldowns": 0, "cooling_for_s": 0.0, "mean_latency_s": None}
    assert endpoints[good.base_url]["mean_latency_s"] > 0
    assert endpoints[failing.base_url]["failures"] == {"server_error": 1} and failing.requests == 1
    assert endpoints[dead]["failures"] == {"connect": 1}
    for url in (failing.base_url, dead):
        assert endpoints[url]["state"] == "cooling" and endpoints[url]["cooldowns"] == 1
        assert endpoints[url]["cooling_for_s"] > 20

    assert sample(metrics, "arrpo_vlm_endpoint_requests_total", endpoint=good.base_url) == 6
    assert sample(metrics, "arrpo_vlm_endpoint_ok_total", endpoint=good.base_url) == 6
    assert sample(metrics, "arrpo_vlm_endpoint_latency_seconds_count", endpoint=good.base_url) == 6
    assert sample(metrics, "arrpo_vlm_endpoint_latency_seconds_sum", endpoint=good.base_url) > 0
    assert sample(metrics, "arrpo_vlm_endpoint_up", endpoint=good.base_url) == 1
    assert sample(metrics, "arrpo_vlm_endpoint_in_flight", endpoint=good.base_url) == 0
    assert sample(metrics, "arrpo_vlm_endpoint_failures_total", endpoint=failing.base_url, kind="server_error") == 1
    assert sample(metrics, "arrpo_vlm_endpoint_failures_total", endpoint=dead, kind="connect") == 1
    assert sample(metrics, "arrpo_vlm_endpoint_cooldowns_total", endpoint=dead) == 1
    assert sample(metrics, "arrpo_vlm_endpoint_up", endpoint=dead) == 0
    assert "arrpo_backend_errors_total 0.0" in metrics  # failover: no request failed


def test_arrpo_serve_with_repeated_endpoints_reports_them_in_health(scripted_server):
    first, second = scripted_server(brighter_wins), scripted_server(brighter_wins)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "arrpo", "serve", "--port", str(port), "--endpoint", first.base_url,
         "--endpoint", second.base_url + "/", "--model", "scripted", "--no-cache", "--max-concurrency", "3"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "arrpo serve did not start"
            time.sleep(0.1)
        group = {"prompt": "p", "images": [b64_png(g) for g in (10, 60, 110, 160, 210)], "order": "given"}
        response = httpx.post(url + "/v1/group_rewards", json=group, timeout=30)
        assert response.status_code == 200 and response.json()["n_valid"] == 10
        health = httpx.get(url + "/health").json()
        metrics = httpx.get(url + "/metrics").text
    finally:
        process.terminate()
        process.wait(30)
    counts = {one["endpoint"]: one["ok"] for one in health["endpoints"]}
    assert counts == {first.base_url: first.requests, second.base_url: second.requests}
    assert sum(counts.values()) == 10 and min(counts.values()) >= 1
    assert health["capacity"] == 4 * 3 * 2  # admitted at once: 4 x --max-concurrency x endpoints
    assert health["model"] == f"openai:{','.join(sorted(counts))}#scripted"
    for endpoint, ok in counts.items():
        assert sample(metrics, "arrpo_vlm_endpoint_ok_total", endpoint=endpoint) == ok
