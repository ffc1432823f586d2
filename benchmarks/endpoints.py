"""One model on 1 vs 3 endpoints, and an endpoint lost in the middle of ``arrpo judge --pairs``.

Each endpoint is ``arrpo.testing.scripted_server`` in its own process with a fixed latency per
request; the client keeps ``--concurrency`` requests in flight on each endpoint (equal
per-endpoint concurrency), so the ideal rate is ``endpoints x concurrency / latency``.

1. Throughput: the real judge stack (``PairwiseJudge`` over ``build_backend([...])``, order
   ``given``: one call per pair, cache off) on 1 and on 3 endpoints.
2. Failure mid-run: ``arrpo judge --pairs`` (a subprocess) over 3 endpoints; when half of the
   verdict lines are written one endpoint is killed (SIGKILL: connections reset) or hung (SIGSTOP:
   requests time out after ``--timeout``). The verdict file is then checked: pairs lost (no line
   or an invalid one) and duplicated (an id on two lines). The line count is sampled every 10 ms:
   ``recovery`` is the time from the failure until a 0.5 s window first writes at least 90 % of
   what the two surviving endpoints can give; ``stall`` the longest time no line was written after it.

    PYTHONPATH=src python benchmarks/endpoints.py       # 100 ms; 8 per endpoint, 2 in the failure runs
    PYTHONPATH=src python benchmarks/endpoints.py --pairs 600 --latency 0.05 --timeout 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from arrpo.judge import PairwiseJudge
from arrpo.vlm import build_backend, endpoint_stats
from judge_throughput import free_port, make_comparisons, wait_for

WINDOW_S = 0.5


@contextmanager
def scripted_endpoints(count: int, latency: float):
    """``count`` scripted servers, each in its own process; yields ``[(url, process)]``."""
    started = []
    try:
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen([sys.executable, "-m", "arrpo.testing.scripted_server", "--port", str(port),
                                        "--latency", str(latency)], stdout=subprocess.DEVNULL)
            started.append((f"http://127.0.0.1:{port}/v1", process))
            wait_for(port)
        yield started
    finally:
        for _, process in started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # a hung one must run again to stop
            process.terminate()
            process.wait()


async def throughput(urls: list[str], pairs: int, concurrency: int) -> dict:
    backend = build_backend(urls, "bench", cache_path=False, max_concurrency=concurrency, max_retries=2, timeout=30)
    judge = PairwiseJudge(backend, order="given")
    total = concurrency * len(urls)
    comparisons = make_comparisons(pairs, 64)
    await judge.judge_many(comparisons[:total], max_pending=total)  # open every connection first
    started = time.perf_counter()
    verdicts = await judge.judge_many(comparisons, max_pending=2 * total)
    wall = time.perf_counter() - started
    spread = [s.requests for s in endpoint_stats(backend)]
    await backend.aclose()
    return {"valid": sum(v.winner == "A" for v in verdicts), "rate": pairs / wall, "wall": wall, "spread": spread}


def write_pairs(folder: Path, pairs: int) -> Path:
    for k in range(16):
        buffer = io.BytesIO()
        Image.effect_noise((64, 64), 20 + k).convert("RGB").save(buffer, format="PNG")
        (folder / f"i{k}.png").write_bytes(buffer.getvalue())
    path = folder / "pairs.jsonl"
    path.write_text("".join(
        json.dumps({"id": f"p{n}", "prompt": f"prompt {n}", "image_a": f"i{n % 16}.png",
                    "image_b": f"i{(n * 7 + 1) % 16}.png"}) + "\n"
        for n in range(pairs)
    ))
    return path


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def failure_run(mode: str, pairs: int, concurrency: int, latency: float, timeout: float) -> dict:
    """``arrpo judge --pairs`` over 3 endpoints; one is killed or hung when half the lines are written."""
    with tempfile.TemporaryDirectory() as tmp, scripted_endpoints(3, latency) as endpoints:
        folder = Path(tmp)
        pairs_path, out = write_pairs(folder, pairs), folder / "verdicts.jsonl"
        command = [sys.executable, "-m", "arrpo", "judge", "--pairs", str(pairs_path), "--out", str(out),
                   "--model", "bench", "--no-cache", "--order", "given", "--max-concurrency", str(concurrency),
                   "--timeout", str(timeout), "--max-retries", "2"]
        for url, _ in endpoints:
            command += ["--endpoint", url]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARRPO_", "OPENAI_"))}
        client = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        samples: list[tuple[float, int]] = []
        failed_at = None
        while client.poll() is None:
            lines = count_lines(out)
            now = time.perf_counter()
            if lines:
                samples.append((now, lines))
            if failed_at is None and lines >= pairs // 2:
                os.kill(endpoints[1][1].pid, signal.SIGKILL if mode == "killed" else signal.SIGSTOP)
                failed_at = now
            time.sleep(0.01)
        stderr = client.stderr.read() if client.stderr else ""
        samples.append((time.perf_counter(), count_lines(out)))
        records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    if client.returncode != 0 or failed_at is None:
        raise SystemExit(f"arrpo judge failed ({client.returncode}): {stderr[-2000:]}")
    ids = [r["id"] for r in records]
    valid = {r["id"] for r in records if r["winner"] != "invalid"}
    at_failure = max(n for t, n in samples if t <= failed_at)
    first_t, first_n = samples[0]
    end_t = next(t for t, n in samples if n == samples[-1][1])
    return {
        "mode": mode, "lines": len(records), "lost": pairs - len(valid), "duplicated": len(ids) - len(set(ids)),
        "before": (at_failure - first_n) / max(failed_at - first_t, 1e-9),
        "after": (len(records) - at_failure) / max(end_t - failed_at, 1e-9),
        "recovery": recovery(samples, failed_at, 0.9 * 2 * concurrency / latency),
        "stall": max((b[0] - a[0] for a, b in itertools.pairwise(samples) if a[0] >= failed_at and b[1] > a[1]),
                     default=0.0),
        "named": endpoints[1][0] in stderr,
    }


def recovery(samples: list[tuple[float, int]], failed_at: float, target_rate: float) -> float | None:
    """Seconds from ``failed_at`` to the first ``WINDOW_S`` window writing at ``target_rate``."""
    after = [(t, n) for t, n in samples if t >= failed_at]
    for index, (start, lines) in enumerate(after):
        ends = [(t, n) for t, n in after[index:] if t - start >= WINDOW_S]
        if not ends:
            return None
        end, more = ends[0]
        if (more - lines) / (end - start) >= target_rate:
            return start - failed_at
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight on each endpoint")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request on every endpoint")
    parser.add_argument("--timeout", type=float, default=1.0, help="client timeout (what a hung endpoint costs)")
    parser.add_argument("--failure-pairs", type=int, default=600)
    parser.add_argument("--failure-concurrency", type=int, default=2,
                        help="per endpoint in the failure runs: low enough that the endpoints, not the "
                             "command's own CPU, limit the rate, so losing one shows")
    args = parser.parse_args()
    c, latency = args.concurrency, args.latency

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{latency * 1000:.0f} ms per request, {c} in flight per endpoint")
    print("\n| endpoints | pairs | valid | pairs/s | ideal | ratio | requests per endpoint |")
    print("|---|---|---|---|---|---|---|")
    for count in (1, 3):
        with scripted_endpoints(count, latency) as endpoints:
            row = asyncio.run(throughput([url for url, _ in endpoints], args.pairs, c))
        ideal = count * c / latency
        print(f"| {count} | {args.pairs} | {row['valid']} | {row['rate']:.1f} | {ideal:.0f} | "
              f"{row['rate'] / ideal:.2f} | {' / '.join(map(str, row['spread']))} |")

    fc = args.failure_concurrency
    print(f"\n`arrpo judge --pairs` over 3 endpoints ({fc} in flight each: ideal {3 * fc / latency:.0f} pairs/s, "
          f"{2 * fc / latency:.0f} on two), one lost at half the lines (--timeout {args.timeout:g}, --max-retries 2); "
          f"recovery: first {WINDOW_S:g} s window at >= 90 % of the two survivors' rate")
    print("\n| endpoint | pairs | lines | lost | duplicated | pairs/s before | pairs/s after | recovery s | "
          "longest stall s | warning names it |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in ("killed", "hung"):
        r = failure_run(mode, args.failure_pairs, fc, latency, args.timeout)
        shown = "never" if r["recovery"] is None else f"{r['recovery']:.2f}"
        print(f"| {mode} | {args.failure_pairs} | {r['lines']} | {r['lost']} | {r['duplicated']} | {r['before']:.1f} | "
              f"{r['after']:.1f} | {shown} | {r['stall']:.2f} | {'yes' if r['named'] else 'no'} |")


if __name__ == "__main__":
    main()
