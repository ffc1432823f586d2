"""``arrpo eval`` runs that must not lose work or hide failures (issue 10): resume with a complete
last line left without its newline and with a torn one, a pair's failure recorded as that pair's
invalid record, the invalid-share exit, ``calls/pair`` counting HTTP retries, a bad ``--out``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path

from arrpo.datasets.pairs import ImageRef, PreferencePair
from arrpo.eval.config import JudgeSpec
from arrpo.eval.providers import RubricSource
from arrpo.eval.runner import EvalRunner, JudgeSetup
from arrpo.jsonl import iter_records
from arrpo.testing.scripted_server import Reply
from tests.eval.test_runner import cli, make_dataset, red_is_better, write_config


def run_eval(tmp_path: Path, url: str, *extra: str, n: int = 4, retries: int = 0):
    config = write_config(tmp_path, url, "  - {name: direct, kind: direct}\n")
    config.write_text(config.read_text().replace("max_retries: 0", f"max_retries: {retries}"))
    dataset = tmp_path / "pairs.jsonl"
    if not dataset.exists():
        make_dataset(tmp_path, n=n)
    out = tmp_path / "run"
    result = cli("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out),
                 "--bootstrap", "0", "--no-progress", *extra, timeout=120)
    return result, out


def verdict_file(out: Path) -> Path:
    return out / "verdicts" / "direct.jsonl"


def test_resume_keeps_a_complete_last_line_and_redoes_a_torn_one(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    result, out = run_eval(tmp_path, server.base_url)
    assert result.returncode == 0, result.stderr
    path = verdict_file(out)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4
    path.write_bytes(b"".join(lines[:3]) + lines[3].rstrip(b"\n"))  # complete, newline missing
    asked = server.requests
    again, _ = run_eval(tmp_path, server.base_url)
    assert again.returncode == 0, again.stderr
    assert server.requests == asked and "0 to judge" in again.stderr
    assert len(path.read_bytes().splitlines()) == 4
    ids = [r["id"] for r in iter_records(path)]
    assert sorted(ids) == ["p0", "p1", "p2", "p3"]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + lines[3][:40])  # killed in the middle of the last record
    torn, _ = run_eval(tmp_path, server.base_url)
    assert torn.returncode == 0, torn.stderr
    assert server.requests == asked + 2  # the torn pair, both orders, and nothing else
    records = [json.loads(line) for line in path.read_bytes().splitlines()]  # every line parses
    assert sorted(r["id"] for r in records) == ["p0", "p1", "p2", "p3"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["judges"]["direct"]["overall"]["n"] == 4


def test_calls_per_pair_counts_http_retries(tmp_path, scripted_server):
    seen: set[str] = set()
    lock = threading.Lock()

    def first_attempt_fails(request) -> Reply:
        key = hashlib.sha256(json.dumps(request.body, sort_keys=True).encode()).hexdigest()
        with lock:
            first = key not in seen
            seen.add(key)
        return Reply(status=503, headers={"Retry-After": "0"}) if first else red_is_better(request)

    server = scripted_server(first_attempt_fails)
    result, out = run_eval(tmp_path, server.base_url, n=3, retries=2)
    assert result.returncode == 0, result.stderr
    assert server.requests == 3 * 2 * 2  # 3 pairs, 2 orders, each answered on its second call
    for record in iter_records(verdict_file(out)):
        for side in ("forward", "reverse"):
            assert record[side]["attempts"] == 1 and record[side]["calls"] == 2
    summary = json.loads((out / "metrics.json").read_text())["judges"]["direct"]["overall"]
    assert summary["calls_per_pair"] == 4.0
    assert "| 4.00 |" in (out / "summary.md").read_text()


def test_calls_per_pair_leaves_out_answers_from_the_response_cache(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    config = write_config(tmp_path, server.base_url, "  - {name: direct, kind: direct}\n")
    cache = tmp_path / "cache.sqlite"
    config.write_text(config.read_text().replace("cache: false", f"cache_path: '{cache}'"))
    dataset = make_dataset(tmp_path, n=3)

    def run(out: Path) -> dict:
        result = cli("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out),
                     "--bootstrap", "0", "--no-progress", timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads((out / "metrics.json").read_text())["judges"]["direct"]["overall"]

    assert run(tmp_path / "first")["calls_per_pair"] == 2.0
    asked = server.requests
    again = run(tmp_path / "second")  # a new run directory: every answer comes from the cache
    assert server.requests == asked
    for record in iter_records(verdict_file(tmp_path / "second")):
        for side in ("forward", "reverse"):
            assert record[side]["correct"] and record[side]["attempts"] == 1
            assert record[side]["cached"] == 1 and record[side]["calls"] == 0
    assert again["calls_per_pair"] == 0.0
    assert "| 0.00 |" in (tmp_path / "second" / "summary.md").read_text()


def test_server_down_exits_1_with_the_cause_after_writing_the_report(tmp_path):
    result, out = run_eval(tmp_path, "http://127.0.0.1:9/v1", n=3)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "6 of 6 answers of judge 'direct' are invalid" in last and "connection failed" in last
    assert "Traceback" not in result.stderr
    assert len(list(iter_records(verdict_file(out)))) == 3 and (out / "report.html").exists()


def test_invalid_share_option(tmp_path, scripted_server):
    make_dataset(tmp_path, n=4, broken=True)  # one pair of four has a broken image: 25 % invalid
    server = scripted_server(red_is_better)
    fine, _ = run_eval(tmp_path, server.base_url)
    assert fine.returncode == 0, fine.stderr
    strict, _ = run_eval(tmp_path, server.base_url, "--max-invalid-share", "0.2")
    assert strict.returncode == 1
    assert "2 of 8 answers" in strict.stderr and "not a recognised image format" in strict.stderr


def test_out_that_is_a_file_is_a_clear_error(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    (tmp_path / "run").write_text("not a directory")
    result, _ = run_eval(tmp_path, server.base_url)
    assert result.returncode == 2 and "--out" in result.stderr and "is a file" in result.stderr
    assert "Traceback" not in result.stderr and server.requests == 0


class ExplodingJudge:
    """A judge that raises for one pair (any exception, not a model answer) and answers the rest."""

    def __init__(self, bad_prompt: str):
        self.bad_prompt = bad_prompt

    async def ask(self, comparison, order):
        from arrpo.schema import OrderAnswer

        await asyncio.sleep(0)
        if comparison.prompt == self.bad_prompt:
            raise KeyError("surprise")
        return OrderAnswer(order=order, winner="A")


def test_a_pair_that_raises_is_recorded_invalid_and_the_run_goes_on(tmp_path):
    from tests.eval.helpers import write_png

    red, blue = write_png(tmp_path / "r.png", (220, 20, 20)), write_png(tmp_path / "b.png", (20, 20, 220))
    pairs = [PreferencePair(id=f"p{i}", prompt=f"prompt {i}", image_a=ImageRef(path=str(red)),
                            image_b=ImageRef(path=str(blue)), label="A") for i in range(4)]
    spec = JudgeSpec(name="boom", kind="direct")
    setup = JudgeSetup(spec, ExplodingJudge("prompt 2"), RubricSource(spec))
    runner = EvalRunner([setup], tmp_path / "run")
    written = asyncio.run(runner.run(pairs))
    assert written == 4
    records = {r["id"]: r for r in iter_records(tmp_path / "run" / "verdicts" / "boom.jsonl")}
    assert set(records) == {"p0", "p1", "p2", "p3"}
    assert records["p2"]["forward"]["winner"] == "invalid"
    assert "KeyError" in records["p2"]["error"] and "surprise" in records["p2"]["error"]
    assert all(records[p]["forward"]["winner"] != "invalid" for p in ("p0", "p1", "p3"))


def test_hostile_answers_are_recorded_and_the_eval_completes(tmp_path, scripted_server):
    answers = {
        "prompt 0": '{"rank": [' + "9" * 5000 + ', 1], "reason": "huge"}',
        "prompt 1": '{"rank": [2, 1], "reason": "\\ud800 x"}',
        "prompt 2": "[" * 50_000 + "]" * 50_000,
    }

    def handler(request) -> Reply:
        hostile = next((text for prompt, text in answers.items() if prompt in request.text), None)
        return Reply(text=hostile) if hostile is not None else red_is_better(request)

    server = scripted_server(handler)
    result, out = run_eval(tmp_path, server.base_url, "--max-invalid-share", "1", n=6)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in verdict_file(out).read_bytes().decode("utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == [f"p{i}" for i in range(6)]
    again, _ = run_eval(tmp_path, server.base_url, "--max-invalid-share", "1", n=6)
    assert again.returncode == 0 and "0 to judge" in again.stderr


def test_a_negative_max_pixels_is_a_config_error(tmp_path):
    config = tmp_path / "judges.yaml"
    config.write_text("max_pixels: -5\njudges:\n  - {name: direct, kind: direct}\n")
    result = cli("eval", "--dataset", "jsonl:nope.jsonl", "--judge", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "max_pixels" in result.stderr and "Traceback" not in result.stderr
