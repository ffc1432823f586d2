"""Judge throughput against a server with fixed simulated latency.

Starts ``arrpo.testing.scripted_server`` in a subprocess (fixed latency, unlimited concurrency),
judges N comparisons with the real client stack (OpenAI SDK + retry + limit wrappers, cache off)
and prints achieved comparisons/s, the ideal (concurrency / latency), their ratio, client CPU
milliseconds per comparison and request bytes per comparison.

    python benchmarks/judge_throughput.py                # 2,000 comparisons, concurrency 64, 100 ms
    python benchmarks/judge_throughput.py --n 500 --image-size 512
"""

from __future__ import annotations

import argparse
import asyncio
import io
import platform
import socket
import subprocess
import sys
import time

from PIL import Image

from arrpo.images import load_image
from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import EndpointPool, build_backend
from arrpo.vlm.wrappers import find_layer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def make_comparisons(n: int, size: int) -> list[Comparison]:
    """n comparisons over a pool of 32 distinct noise images, JPEG-encoded once each."""
    pool = []
    for i in range(32):
        buffer = io.BytesIO()
        Image.effect_noise((size, size), 20 + i).convert("RGB").save(buffer, format="JPEG", quality=90)
        pool.append(load_image(buffer.getvalue()))
    return [
        Comparison(prompt=f"prompt number {i}", image_a=pool[i % 32], image_b=pool[(i * 7 + 1) % 32], id=str(i))
        for i in range(n)
    ]


async def run(n: int, concurrency: int, latency: float, size: int, port: int) -> dict:
    backend = build_backend(f"http://127.0.0.1:{port}/v1", "bench", cache_path=False,
                            max_concurrency=concurrency, max_retries=2, timeout=30)
    sent = {"bytes": 0}
    async def count(request):
        sent["bytes"] += len(request.content)

    for endpoint in find_layer(backend, EndpointPool).backends.values():
        for http in endpoint._https:
            http.event_hooks["request"] = [count]
    judge = PairwiseJudge(backend, order="given")
    comparisons = make_comparisons(n, size)
    for c in comparisons[:32]:  # encode every image once up front, as a real run would
        _ = c.image_a.data_url, c.image_b.data_url
    await judge.judge_many(comparisons[:concurrency], max_pending=concurrency)  # warm connections
    sent["bytes"] = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    verdicts = await judge.judge_many(comparisons, max_pending=concurrency * 2)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await backend.aclose()
    valid = sum(v.winner == "A" for v in verdicts)
    rate, ideal = n / wall, concurrency / latency
    return {"n": n, "size": size, "valid": valid, "rate": rate, "ideal": ideal, "ratio": rate / ideal,
            "cpu_ms": 1000 * cpu / n, "bytes": sent["bytes"] / n, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, nargs="+", default=[64, 512])
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "arrpo.testing.scripted_server", "--port", str(port),
                               "--latency", str(args.latency)], stdout=subprocess.DEVNULL)
    try:
        wait_for(port)
        rows = [asyncio.run(run(args.n, args.concurrency, args.latency, s, port)) for s in args.image_size]
    finally:
        server.terminate()
        server.wait()
    print(f"machine: {platform.node()} {platform.machine()}, {__import__('os').cpu_count()} cores, "
          f"Python {platform.python_version()}; server latency {args.latency * 1000:.0f} ms, "
          f"concurrency {args.concurrency}")
    header = f"| {'image px':>8} | {'pairs':>6} | {'valid':>6} | {'cmp/s':>7} | {'ideal':>7} | {'ratio':>5} | {'client CPU ms/cmp':>17} | {'request KB/cmp':>14} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['size']:>8} | {r['n']:>6} | {r['valid']:>6} | {r['rate']:>7.1f} | {r['ideal']:>7.1f} | "
              f"{r['ratio']:>5.2f} | {r['cpu_ms']:>17.2f} | {r['bytes'] / 1024:>14.1f} |")


if __name__ == "__main__":
    main()
