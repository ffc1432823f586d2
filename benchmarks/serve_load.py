"""Reward service vs. in-process judge: throughput, latency percentiles, overhead per request.

Both paths judge the same pairs with the same scripted VLM (fixed latency per call, order
``given``: one call per pair) and the same backend concurrency. The service path adds HTTP, JSON
and base64, image validation and admission control; the difference in mean latency at equal load
is the service overhead per request.

    PYTHONPATH=src python benchmarks/serve_load.py --requests 400 --clients 16 --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import statistics
import time

import httpx
from PIL import Image

from arrpo.images import load_image
from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.server import ServerThread, ServiceConfig, create_app
from arrpo.testing.scripted_server import ChatRequest, Reply, ScriptedVLMServer
from arrpo.vlm import build_backend


def png(gray: int, size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (gray, gray, gray)).save(buffer, format="PNG")
    return buffer.getvalue()


def handler_with(latency: float):
    def handler(request: ChatRequest) -> Reply:
        first, second = request.images()[-2:]
        better = first.getpixel((0, 0))[0] >= second.getpixel((0, 0))[0]
        return Reply(text=json.dumps({"rank": [1, 2] if better else [2, 1], "reason": "r"}), delay=latency)

    return handler


def summary(name: str, latencies: list[float], wall: float, wrong: int) -> dict:
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"path": name, "n": len(ordered), "req/s": len(ordered) / wall, "mean": statistics.mean(ordered) * 1000,
            "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": ordered[-1] * 1000, "wrong": wrong}


async def run_clients(clients: int, jobs: list, call) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    wrong = 0
    queue = list(enumerate(jobs))

    async def worker() -> None:
        nonlocal wrong
        while queue:
            _, job = queue.pop()
            started = time.perf_counter()
            ok = await call(job)
            latencies.append(time.perf_counter() - started)
            wrong += 0 if ok else 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, wrong, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", default="1,16", help="comma-separated concurrent client counts")
    parser.add_argument("--latency", type=float, default=0.05, help="scripted VLM seconds per call")
    parser.add_argument("--concurrency", type=int, default=16, help="backend concurrency (both paths)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    args = parser.parse_args()
    client_counts = [int(c) for c in str(args.clients).split(",")]

    rng = random.Random(0)
    grays = list(range(0, 256, 3))
    raw = {g: png(g, args.size) for g in grays}
    loaded = {g: load_image(raw[g]) for g in grays}
    encoded = {g: base64.b64encode(raw[g]).decode() for g in grays}
    jobs = [tuple(rng.sample(grays, 2)) for _ in range(args.requests)]
    rows = []

    with ScriptedVLMServer(handler_with(args.latency), keep=False) as vlm:
        # ---- in-process judge
        async def in_process() -> tuple[list[float], int, float]:
            backend = build_backend(vlm.base_url, "s", max_concurrency=args.concurrency, max_retries=0, cache_path=False)
            judge = PairwiseJudge(backend, order="given")

            async def call(job) -> bool:
                a, b = job
                verdict = await judge.judge(Comparison(prompt="p", image_a=loaded[a], image_b=loaded[b]))
                return verdict.winner == ("A" if a > b else "B")

            try:
                return await run_clients(args.clients, jobs, call)
            finally:
                await backend.aclose()

        for clients in client_counts:
            args.clients = clients
            latencies, wrong, wall = asyncio.run(in_process())
            rows.append(summary(f"in-process, {clients:>2} cl", latencies, wall, wrong))

        # ---- through the service
        backend = build_backend(vlm.base_url, "s", max_concurrency=args.concurrency, max_retries=0, cache_path=False)
        app = create_app(backend, ServiceConfig(max_pending=4 * args.concurrency + max(client_counts)))
        with ServerThread(app) as server:

            async def via_service() -> tuple[list[float], int, float]:
                limits = httpx.Limits(max_connections=args.clients)
                async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as http:

                    async def call(job) -> bool:
                        a, b = job
                        body = {"prompt": "p", "image_a": encoded[a], "image_b": encoded[b], "order": "given"}
                        response = await http.post("/v1/compare", json=body)
                        return response.status_code == 200 and response.json()["verdict"]["winner"] == ("A" if a > b else "B")

                    return await run_clients(args.clients, jobs, call)

            for clients in client_counts:
                args.clients = clients
                latencies, wrong, wall = asyncio.run(via_service())
                rows.append(summary(f"service,    {clients:>2} cl", latencies, wall, wrong))

    print(f"\n{args.requests} pairs per row, {args.size}x{args.size} PNG images, "
          f"scripted VLM latency {args.latency * 1000:.0f} ms, backend concurrency {args.concurrency}\n")
    header = f"| {'path':<17} | {'req/s':>6} | {'mean ms':>7} | {'p50 ms':>7} | {'p90 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | wrong |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['path']:<17} | {r['req/s']:>6.1f} | {r['mean']:>7.1f} | {r['p50']:>7.1f} | {r['p90']:>7.1f} | "
              f"{r['p99']:>7.1f} | {r['max']:>7.1f} | {r['wrong']:>5} |")
    half = len(client_counts)
    print()
    for k, clients in enumerate(client_counts):
        overhead = rows[half + k]["mean"] - rows[k]["mean"]
        print(f"service overhead per request at {clients} client(s): {overhead:.1f} ms (mean latency difference)")


if __name__ == "__main__":
    main()
