"""Three ways in for one group of k: ``/v1/group_rewards`` (the whole group in one request),
``/v1/group_member`` (k requests, one per member, as verl-omni's adapter sends them) and
Flow-Factory's ``/flow-factory/<k>/compute`` (one request per group).

Same scripted VLM (fixed latency per call, order ``given``: one call per pair), same backend
concurrency; ``groups`` groups sent at once. Prints wall time, judge calls and the time per group
of each path; the difference to ``group_rewards`` is what gathering or the other protocol adds.

    PYTHONPATH=src python benchmarks/gathered_groups.py --k 4 16 --groups 8 --latency 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import platform
import time

import httpx
from PIL import Image

from arrpo.server import ServerThread, ServiceConfig, create_app
from arrpo.testing.scripted_server import ChatRequest, Reply, ScriptedVLMServer
from arrpo.vlm import build_backend


def b64_png(gray: int, size: int = 64) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (gray, gray, gray)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def handler_with(latency: float):
    def handler(request: ChatRequest) -> Reply:
        first, second = request.images()[-2:]
        better = first.getpixel((0, 0))[0] >= second.getpixel((0, 0))[0]
        return Reply(text=json.dumps({"rank": [1, 2] if better else [2, 1], "reason": "r"}), delay=latency)

    return handler


async def send(url: str, path: str, k: int, groups: int, round_: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        jobs = []
        for g in range(groups):
            images = [b64_png((g * 31 + 9 * i) % 250) for i in range(k)]
            prompt = f"prompt {g} round {round_}"
            if path == "group_rewards":
                jobs.append(client.post("/v1/group_rewards", json={"prompt": prompt, "images": images, "order": "given"}))
            elif path == "group_member":
                jobs += [client.post("/v1/group_member", json={"prompt": prompt, "image": im, "group": f"bench:{round_}:{g}",
                                                               "group_size": k, "order": "given"}) for im in images]
            else:
                jobs.append(client.post(f"/flow-factory/{k}/compute", json={"prompt": [prompt] * k, "image": images}))
        answers = await asyncio.gather(*jobs)
        bad = [a for a in answers if a.status_code != 200 or (path == "flow_factory" and a.json().get("error"))]
        if bad:
            raise SystemExit(f"{path}: {bad[0].status_code} {bad[0].text[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per scripted VLM call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per path; the fastest is shown")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
          f"VLM latency {args.latency * 1000:.0f} ms/call, concurrency {args.concurrency}, {args.groups} groups at once")
    print(f"{'k':>3} {'path':<14} {'calls':>6} {'wall s':>8} {'ms/group':>9}")
    for k in args.k:
        for path in ("group_rewards", "group_member", "flow_factory"):
            vlm = ScriptedVLMServer(handler_with(args.latency)).start()
            backend = build_backend(vlm.base_url, "scripted", max_concurrency=args.concurrency, max_retries=0,
                                    cache_path=False, timeout=60)
            # admission never refuses here: the figures are the paths' own cost, not 503 retries
            app = create_app(backend, ServiceConfig(max_images=max(16, k), max_pending=1_000_000))
            server = ServerThread(app).start()
            try:
                walls = []
                for round_ in range(args.repeat):
                    started = time.perf_counter()
                    asyncio.run(send(server.url, path, k, args.groups, round_))
                    walls.append(time.perf_counter() - started)
                wall = min(walls)
                calls = vlm.requests // args.repeat
                print(f"{k:>3} {path:<14} {calls:>6} {wall:>8.2f} {wall / args.groups * 1000:>9.1f}")
            finally:
                server.stop(timeout=10)
                vlm.stop()


if __name__ == "__main__":
    main()
