"""Load, overload and graceful shutdown against the real service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx

from arrpo.server import ServiceConfig
from tests.serve.helpers import b64_png, brighter_wins, slow_brighter_wins

GRAYS = list(range(0, 256, 5))
IMAGES = {g: b64_png(g) for g in GRAYS}


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.5):.1f} ms  p90 {at(0.9):.1f} ms  p99 {at(0.99):.1f} ms  max {ordered[-1] * 1000:.1f} ms"


def test_32_clients_x_50_requests_all_answered_correctly(start_service):
    service = start_service(brighter_wins, concurrency=16)
    clients, per_client = 32, 50
    latencies: list[float] = []
    wrong: list[tuple] = []

    async def client(index: int, http: httpx.AsyncClient) -> int:
        rng = random.Random(index)
        done = 0
        for k in range(per_client):
            a, b = rng.sample(GRAYS, 2)
            body = {"prompt": "bright", "image_a": IMAGES[a], "image_b": IMAGES[b], "order": "given",
                    "id": f"{index}-{k}"}
            started = time.perf_counter()
            response = await http.post("/v1/compare", json=body)
            latencies.append(time.perf_counter() - started)
            data = response.json()
            expected = "A" if a > b else "B"
            if response.status_code != 200 or data["id"] != body["id"] or data["verdict"]["winner"] != expected:
                wrong.append((index, k, response.status_code, response.text[:200]))
            done += 1
        return done

    async def run() -> list[int]:
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=service.url, timeout=60, limits=limits) as http:
            return await asyncio.gather(*(client(i, http) for i in range(clients)))

    started = time.perf_counter()
    done = asyncio.run(run())
    elapsed = time.perf_counter() - started
    print(f"\nload: {clients} clients x {per_client} requests in {elapsed:.1f} s "
          f"({clients * per_client / elapsed:.0f} req/s); {percentiles(latencies)}")
    assert sum(done) == clients * per_client and not wrong, wrong[:3]
    assert service.vlm.requests == clients * per_client  # none lost, none duplicated
    assert service.vlm.max_in_flight <= 16
    assert httpx.get(service.url + "/health").json()["in_flight"] == 0


def test_overload_answers_503_with_retry_after_and_recovers(start_service):
    service = start_service(slow_brighter_wins(0.3), concurrency=4, config=ServiceConfig(max_pending=8))
    burst = 100

    async def one(http: httpx.AsyncClient, k: int):
        a, b = (200, 10) if k % 2 else (10, 200)
        body = {"prompt": "p", "image_a": IMAGES[a], "image_b": IMAGES[b], "order": "given"}
        response = await http.post("/v1/compare", json=body)
        return k, response

    async def run():
        limits = httpx.Limits(max_connections=burst)
        async with httpx.AsyncClient(base_url=service.url, timeout=60, limits=limits) as http:
            return await asyncio.gather(*(one(http, k) for k in range(burst)))

    results = asyncio.run(run())
    ok = [(k, r) for k, r in results if r.status_code == 200]
    refused = [r for _, r in results if r.status_code == 503]
    print(f"\noverload: {len(ok)} answered, {len(refused)} refused with 503")
    assert len(ok) + len(refused) == burst
    assert refused and ok
    assert len(ok) <= 50  # capacity 8 bounds what is admitted while the burst lasts
    for response in refused:
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= 60
        error = response.json()["error"]
        assert error["code"] == "saturated" and "retry after" in error["message"]
    for k, response in ok:
        assert response.json()["verdict"]["winner"] == ("A" if k % 2 else "B")
    assert service.vlm.max_in_flight <= 4  # bounded concurrency to the VLM
    # healthy afterwards
    health = httpx.get(service.url + "/health").json()
    assert health["status"] == "ok" and health["in_flight"] == 0
    after = httpx.post(service.url + "/v1/compare", timeout=30,
                       json={"prompt": "p", "image_a": IMAGES[0], "image_b": IMAGES[255]})
    assert after.status_code == 200 and after.json()["verdict"]["winner"] == "B"
    metrics = httpx.get(service.url + "/metrics").text
    assert f'arrpo_rejected_total{{reason="saturated"}} {len(refused)}' in metrics
    assert f'arrpo_requests_total{{endpoint="/v1/compare",status="503"}} {len(refused)}' in metrics


def test_graceful_shutdown_finishes_in_flight_requests(start_service):
    service = start_service(slow_brighter_wins(1.0))
    results: list[httpx.Response] = []

    def call() -> None:
        body = {"prompt": "p", "image_a": IMAGES[255], "image_b": IMAGES[0], "order": "given"}
        results.append(httpx.post(service.url + "/v1/compare", json=body, timeout=30))

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 10
    while service.vlm.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.vlm.in_flight == 1
    stopper = threading.Thread(target=service.thread.stop)  # what SIGTERM does
    stopper.start()
    worker.join(30)
    stopper.join(30)
    assert len(results) == 1 and results[0].status_code == 200
    assert results[0].json()["verdict"]["winner"] == "A"
    try:
        httpx.get(service.url + "/health", timeout=2)
    except httpx.TransportError:
        pass  # no longer accepting connections
    else:
        raise AssertionError("the service still answers after shutdown")
