"""Hostile VLM answers through every interface: what survives, what is lost, what crashes.

Serves each case of :mod:`arrpo.testing.hostile` (lone surrogates, 5,000-digit ranks, 50,000-deep
nesting, malformed/empty/refused/tied/out-of-range answers, megabytes of content, content of the
wrong type, dropped connections, 500/429 with odd ``Retry-After``) from a scripted VLM, mixed with
as many well-behaved pairs, and runs them through ``arrpo judge A B`` (one process per case),
``arrpo judge --pairs`` (then a rerun, then a replay from the response cache), ``arrpo eval``
(then a rerun) and the reward service over HTTP (``/v1/compare`` and ``/v1/group_rewards``).
Prints one row per interface: cases, pairs, verdicts written, pairs lost, pairs written twice,
tracebacks, HTTP 5xx, outputs that are not UTF-8, and the largest output line or response.

    python benchmarks/hostile_answers.py              # everything (a few minutes on 2 cores)
    python benchmarks/hostile_answers.py --skip-single
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from arrpo.testing.hostile import CASES, hostile_handler
from arrpo.testing.scripted_server import ScriptedVLMServer


@dataclass
class Row:
    interface: str
    cases: int = 0
    pairs: int = 0
    written: int = 0
    lost: int = 0
    twice: int = 0
    tracebacks: int = 0
    http_5xx: int = 0
    not_utf8: int = 0
    largest: int = 0
    seconds: float = 0.0


def arrpo(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARRPO_", "OPENAI_"))}
    env["ARRPO_CACHE_DIR"] = str(cache) if cache else "/nonexistent-cache"
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, env=env, timeout=900)


def utf8_ok(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def png(path: Path, gray: int) -> Path:
    Image.new("RGB", (16, 16), (gray, gray, gray)).save(path)
    return path


def count_lines(row: Row, path: Path, expected: set[str]) -> None:
    """Add what a JSONL output holds to ``row``: lines written, ids lost and repeated."""
    data = path.read_bytes() if path.exists() else b""
    row.not_utf8 += 0 if utf8_ok(data) else 1
    ids = []
    for line in data.splitlines():
        row.largest = max(row.largest, len(line))
        try:
            ids.append(str(json.loads(line.decode("utf-8", "replace"))["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    row.written += len(ids)
    row.lost += len(expected - set(ids))
    row.twice += len(ids) - len(set(ids))


def add_process(row: Row, result: subprocess.CompletedProcess) -> None:
    row.tracebacks += result.stderr.count(b"Traceback") + result.stdout.count(b"Traceback")
    row.not_utf8 += 0 if utf8_ok(result.stdout) and utf8_ok(result.stderr) else 1


def single_pair(url: str, root: Path) -> Row:
    row, started = Row("arrpo judge A B"), time.perf_counter()
    for name in CASES:
        result = arrpo("judge", str(root / "dark.png"), str(root / "bright.png"), "--prompt", f"case-{name}",
                       "--endpoint", url, "--model", "m", "--no-cache", "--max-retries", "1", "--order", "both")
        row.cases, row.pairs = row.cases + 1, row.pairs + 1
        add_process(row, result)
        written = b"winner" in result.stdout and result.returncode in (0, 1)
        row.written += int(written)
        row.lost += int(not written)
        row.largest = max(row.largest, len(result.stdout))
    row.seconds = time.perf_counter() - started
    return row


def batch(url: str, root: Path, pairs: Path, ids: set[str]) -> list[Row]:
    rows = []
    out, cache = root / "verdicts.jsonl", root / "cache"
    args = ["judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", url, "--model", "m",
            "--max-retries", "1", "--order", "both", "--max-concurrency", "8"]
    for label in ("arrpo judge --pairs", "  rerun", "  replay from cache"):
        if label.endswith("cache"):
            out.unlink()
        row, started = Row(label, len(CASES), len(ids)), time.perf_counter()
        add_process(row, arrpo(*args, cache=cache))
        count_lines(row, out, ids)
        row.seconds = time.perf_counter() - started
        rows.append(row)
    return rows


def evaluate(url: str, root: Path, ids: set[str]) -> list[Row]:
    lines = [json.loads(line) for line in (root / "pairs.jsonl").read_text().splitlines()]
    dataset = root / "dataset.jsonl"
    dataset.write_text("".join(json.dumps({**line, "label": "B"}) + "\n" for line in lines))
    config = root / "judges.yaml"
    config.write_text(f"backend: {{endpoint: '{url}', model: m, cache: false, max_retries: 1}}\n"
                      "judges:\n  - {name: direct, kind: direct}\n")
    rows = []
    for label in ("arrpo eval", "  rerun"):
        row, started = Row(label, len(CASES), len(ids)), time.perf_counter()
        add_process(row, arrpo("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out",
                               str(root / "run"), "--bootstrap", "0", "--no-progress", "--max-concurrency", "8"))
        count_lines(row, root / "run" / "verdicts" / "direct.jsonl", ids)
        row.seconds = time.perf_counter() - started
        rows.append(row)
    return rows


def service(root: Path) -> Row:
    import base64

    import httpx

    from arrpo.server import ServerThread, ServiceConfig, create_app
    from arrpo.vlm import build_backend

    def b64(gray: int) -> str:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (gray, gray, gray)).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    row, started = Row("service /v1/compare + /v1/group_rewards", len(CASES)), time.perf_counter()
    with ScriptedVLMServer(hostile_handler) as vlm:
        backend = build_backend(vlm.base_url, "m", max_retries=1, cache_path=False, retry_base_delay=0.01)
        thread = ServerThread(create_app(backend, ServiceConfig()), log_level="critical").start()
        try:
            for name in CASES:
                for path, body in (
                    ("/v1/compare", {"prompt": f"case-{name}", "image_a": b64(20), "image_b": b64(200),
                                     "order": "both", "id": name}),
                    ("/v1/group_rewards", {"prompt": f"case-{name}", "images": [b64(20), b64(200), b64(90)]}),
                ):
                    row.pairs += 1 if path == "/v1/compare" else 3
                    try:
                        response = httpx.post(thread.url + path, json=body, timeout=300)
                    except httpx.HTTPError:
                        row.lost += 1
                        continue
                    row.http_5xx += int(response.status_code >= 500)
                    row.not_utf8 += 0 if utf8_ok(response.content) else 1
                    row.largest = max(row.largest, len(response.content))
                    if response.status_code == 200:
                        data = response.json()
                        row.written += 1 if path == "/v1/compare" else len(data.get("pairs", []))
                    else:
                        row.lost += 1 if path == "/v1/compare" else 3
        finally:
            thread.stop(timeout=10)
    row.seconds = time.perf_counter() - started
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-single", action="store_true", help="skip the one-process-per-case CLI run")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, ScriptedVLMServer(hostile_handler, keep=False) as vlm:
        root = Path(tmp)
        png(root / "dark.png", 30)
        png(root / "bright.png", 220)
        lines = [{"id": name, "prompt": f"case-{name}", "image_a": "dark.png", "image_b": "bright.png"}
                 for name in CASES]
        lines += [{"id": f"good{i}", "prompt": f"plain {i}", "image_a": "dark.png", "image_b": "bright.png"}
                  for i in range(len(CASES))]
        pairs = root / "pairs.jsonl"
        pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
        ids = {line["id"] for line in lines}
        if not args.skip_single:
            rows.append(single_pair(vlm.base_url, root))
        rows += batch(vlm.base_url, root, pairs, ids)
        rows += evaluate(vlm.base_url, root, ids)
        rows.append(service(root))
    print(f"hostile answers: {len(CASES)} kinds, each mixed with as many good pairs where a file is read; "
          f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    header = ("interface", "cases", "pairs", "written", "lost", "twice", "tracebacks", "5xx", "not utf-8",
              "largest B", "s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(" | ".join(str(v) for v in (r.interface, r.cases, r.pairs, r.written, r.lost, r.twice, r.tracebacks,
                                          r.http_5xx, r.not_utf8, f"{r.largest:,}", f"{r.seconds:.1f}")))


if __name__ == "__main__":
    main()
