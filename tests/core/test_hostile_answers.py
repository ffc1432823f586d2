"""Issue 10: no model answer, whatever its bytes, may stop a batch.

Every case of :mod:`arrpo.testing.hostile` goes through the Python API, ``arrpo judge A B`` and
``arrpo judge --pairs`` against a scripted VLM: each pair ends with exactly one verdict, every
output is valid UTF-8, nothing prints a traceback, and reruns (from the response cache too)
complete the run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

import arrpo.judge as judge_module
from arrpo.judge import PARSE_INLINE_CHARS, PairwiseJudge
from arrpo.schema import Comparison
from arrpo.testing.hostile import CASES, GOOD, case_of, hostile_handler
from arrpo.testing.scripted_server import Reply
from arrpo.text import DEFAULT_MAX_ANSWER_CHARS
from arrpo.vlm import build_backend
from arrpo.vlm.cache import ResponseCache
from tests.core.test_cli_judge import ENV

#: Bound on one verdict's JSON: two answers of at most DEFAULT_MAX_ANSWER_CHARS, kept twice at most.
MAX_VERDICT_BYTES = 6 * DEFAULT_MAX_ANSWER_CHARS * 4 + 10_000


def verdict_line_ok(line: bytes) -> dict:
    """A verdict line is valid UTF-8 JSON of bounded size."""
    assert len(line) < MAX_VERDICT_BYTES, len(line)
    return json.loads(line.decode("utf-8"))


def comparison(make_image, name: str) -> Comparison:
    return Comparison(prompt=f"case-{name}", image_a=make_image((10, 10, 10)), image_b=make_image((200, 200, 200)),
                      id=name)


def test_every_hostile_answer_ends_in_one_verdict(scripted_server, make_image, tmp_path):
    server = scripted_server(hostile_handler)
    backend = build_backend(server.base_url, "m", max_retries=1, cache_path=tmp_path / "cache.sqlite",
                            retry_base_delay=0.01)
    judge = PairwiseJudge(backend, order="given")
    verdicts = judge.judge_many_sync([comparison(make_image, name) for name in CASES])
    assert [v.id for v in verdicts] == list(CASES)
    by_id = {v.id: v for v in verdicts}
    for name, (_, can_be_valid) in CASES.items():
        verdict = by_id[name]
        verdict_line_ok(verdict.model_dump_json().encode("utf-8"))
        if not can_be_valid:
            assert verdict.winner == "invalid" and verdict.invalid_reason, name
    # the three answers that crashed before
    assert by_id["lone-surrogate"].winner == "B" and by_id["lone-surrogate"].reason == "\ufffd x"
    assert "ranks must be 1 or 2" in by_id["rank-5000-digits"].invalid_reason
    assert by_id["nested-50000"].winner == "B"
    # megabytes come back as a bounded, marked excerpt; a long reason is clipped with a marker
    huge = by_id["huge-content"].answers[0]
    assert "too long" in huge.invalid_reason and len(huge.raw) < DEFAULT_MAX_ANSWER_CHARS + 100
    assert "characters cut" in huge.raw
    long_reason = by_id["long-valid-reason"]
    assert long_reason.winner == "B" and "characters cut" in long_reason.reason
    assert len(long_reason.reason) < DEFAULT_MAX_ANSWER_CHARS + 100
    assert by_id["content-parts"].winner == "B" and by_id["body-not-utf8"].winner == "B"
    assert by_id["usage-garbage"].winner == "B" and by_id["usage-garbage"].usage.prompt_tokens == 0


def test_the_kept_answer_length_is_configurable(scripted_server, make_image):
    server = scripted_server(lambda request: Reply(text='{"rank": [1, 2], "reason": "' + "z" * 5000 + '"}'))
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=False)
    short = PairwiseJudge(backend, order="given", max_answer_chars=100).judge_sync(comparison(make_image, "x"))
    assert short.winner == "A" and len(short.reason) < 200 and short.reason.startswith("z" * 100)
    full = PairwiseJudge(backend, order="given", max_answer_chars=None).judge_sync(comparison(make_image, "x"))
    assert len(full.reason) == 5000
    with pytest.raises(ValueError, match="max_answer_chars"):
        PairwiseJudge(backend, max_answer_chars=0)


def test_a_crash_while_parsing_is_an_invalid_verdict_and_leaves_no_cached_answer(
    scripted_server, make_image, tmp_path, monkeypatch
):
    server = scripted_server(lambda request: Reply(text=GOOD))
    cache_path = tmp_path / "cache.sqlite"
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=cache_path)
    judge = PairwiseJudge(backend, order="given", parse_retries=0)

    def explode(text, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(judge_module, "parse_rank_answer", explode)
    verdict = judge.judge_sync(comparison(make_image, "p"))
    assert verdict.winner == "invalid" and "RecursionError" in verdict.invalid_reason
    assert len(ResponseCache(cache_path)) == 0  # the answer that crashed is not kept
    monkeypatch.undo()
    again = PairwiseJudge(backend, order="given").judge_sync(comparison(make_image, "p"))
    assert again.winner == "B" and server.requests == 2  # asked again, not served the crashed answer


def test_any_exception_in_a_pair_is_an_invalid_verdict_and_the_batch_goes_on(scripted_server, make_image,
                                                                            monkeypatch):
    server = scripted_server(lambda request: Reply(text=GOOD))
    judge = PairwiseJudge(build_backend(server.base_url, "m", max_retries=0, cache_path=False), order="random")
    real = judge.orders_for

    def orders_for(c):
        if c.id == "bad":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(c)

    monkeypatch.setattr(judge, "orders_for", orders_for)
    verdicts = judge.judge_many_sync([comparison(make_image, n) for n in ("a", "bad", "b")])
    assert [v.id for v in verdicts] == ["a", "bad", "b"]
    assert verdicts[1].winner == "invalid" and "UnicodeEncodeError" in verdicts[1].invalid_reason
    assert verdicts[0].is_valid and verdicts[2].is_valid


def test_unreadable_cache_rows_from_another_version_are_asked_again(scripted_server, make_image, tmp_path):
    server = scripted_server(lambda request: Reply(text=GOOD))
    cache_path = tmp_path / "cache.sqlite"
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=cache_path)
    judge = PairwiseJudge(backend, order="given")
    assert judge.judge_sync(comparison(make_image, "p")).winner == "B"
    cache = ResponseCache(cache_path)
    cache._db.execute("UPDATE responses SET usage = 'not json', text = ?", ('{"rank":[' + "9" * 5000 + "]}",))
    cache._db.execute("INSERT INTO responses VALUES ('other', 'x', '{}', NULL, NULL)")
    fresh = PairwiseJudge(build_backend(server.base_url, "m", max_retries=0, cache_path=cache_path), order="given")
    assert fresh.judge_sync(comparison(make_image, "p")).winner == "B"
    assert server.requests == 2


def test_long_answers_are_parsed_off_the_event_loop(scripted_server, make_image, monkeypatch):
    long_answer = GOOD + " " * (PARSE_INLINE_CHARS + 10)
    server = scripted_server(lambda request: Reply(text=long_answer if "long" in request.text else GOOD))
    judge = PairwiseJudge(build_backend(server.base_url, "m", max_retries=0, cache_path=False), order="given")
    threads: dict[str, str] = {}
    real = judge_module.parse_rank_answer

    def spy(text, **kwargs):
        threads["long" if len(text) > PARSE_INLINE_CHARS else "short"] = threading.current_thread().name
        return real(text, **kwargs)

    monkeypatch.setattr(judge_module, "parse_rank_answer", spy)

    async def main():
        loop_thread = threading.current_thread().name
        verdicts = await judge.judge_many([comparison(make_image, "short"), comparison(make_image, "long")])
        return loop_thread, verdicts

    loop_thread, verdicts = asyncio.run(main())
    assert [v.winner for v in verdicts] == ["B", "B"]
    assert threads["short"] == loop_thread and threads["long"] != loop_thread


# ---------------------------------------------------------------- through the command line
def run_arrpo(*args: str, cache_dir: str = "/nonexistent-cache") -> subprocess.CompletedProcess:
    env = {**ENV, "ARRPO_CACHE_DIR": cache_dir, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, env=env, timeout=300)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name, value in (("dark", 30), ("bright", 220)):
        Image.new("RGB", (16, 16), (value, value, value)).save(tmp_path / f"{name}.png")
    return tmp_path


#: A process per case is slow on a small machine: the single-pair command gets the answers that
#: crashed it (as text and as --json) and one of each other kind; the batch command gets them all.
SINGLE_PAIR_CASES = {
    "lone-surrogate": ([], ["--json"]), "rank-5000-digits": ([], ["--json"]), "nested-50000": ([], ["--json"]),
    "huge-content": ([],), "markup-in-winner": ([],), "content-number": ([],), "429-retry-after-nan": ([],),
}


def test_single_pair_cli_survives_hostile_answers(scripted_server, images):
    server = scripted_server(hostile_handler)
    failures = []
    for name, variants in SINGLE_PAIR_CASES.items():
        for extra in variants:
            result = run_arrpo("judge", str(images / "dark.png"), str(images / "bright.png"), "--prompt",
                               f"case-{name}", "--endpoint", server.base_url, "--model", "m", "--no-cache",
                               "--max-retries", "1", "--order", "both", *extra)
            stdout = result.stdout.decode("utf-8")  # valid UTF-8, or this raises
            if result.returncode not in (0, 1) or b"Traceback" in result.stderr or "winner" not in stdout:
                failures.append((name, extra, result.returncode, result.stderr.decode("utf-8", "replace")[-500:]))
    assert not failures


def write_pairs(root: Path, good: int) -> Path:
    lines = [{"id": name, "prompt": f"case-{name}", "image_a": "dark.png", "image_b": "bright.png"} for name in CASES]
    lines += [{"id": f"good{i}", "prompt": f"plain {i}", "image_a": "dark.png", "image_b": "bright.png"}
              for i in range(good)]
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def read_lines(path: Path) -> list[dict]:
    return [verdict_line_ok(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_batch_cli_survives_every_hostile_answer_and_reruns_complete(scripted_server, images):
    server = scripted_server(hostile_handler)
    pairs, out = write_pairs(images, good=len(CASES)), images / "verdicts.jsonl"
    cache = str(images / "cache")
    args = ["judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url, "--model", "m",
            "--max-retries", "1", "--order", "both", "--max-concurrency", "8"]
    result = run_arrpo(*args, cache_dir=cache)
    assert b"Traceback" not in result.stderr, result.stderr.decode("utf-8", "replace")[-2000:]
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")[-2000:]
    records = read_lines(out)
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 2 * len(CASES)  # no pair lost, none twice
    winners = {r["id"]: r["winner"] for r in records}
    assert all(winners[f"good{i}"] == "tie" for i in range(len(CASES)))  # GOOD says [2, 1] in both orders
    for name, (_, can_be_valid) in CASES.items():
        assert can_be_valid or winners[name] == "invalid", name

    asked = server.requests
    again = run_arrpo(*args, cache_dir=cache)
    assert again.returncode == 0 and b"already judged" in again.stderr and server.requests == asked

    # the same run from scratch is answered from the response cache, hostile answers included
    out.unlink()
    replay = run_arrpo(*args, cache_dir=cache)
    assert b"Traceback" not in replay.stderr and replay.returncode == 0, replay.stderr.decode("utf-8", "replace")
    assert {r["id"]: r["winner"] for r in read_lines(out)} == winners


def test_batch_summary_prints_invalid_reasons_that_look_like_markup(scripted_server, images):
    server = scripted_server(hostile_handler)
    pairs, out = images / "pairs.jsonl", images / "verdicts.jsonl"
    pairs.write_text(json.dumps({"id": "m", "prompt": "case-markup-in-winner", "image_a": "dark.png",
                                 "image_b": "bright.png"}) + "\n")
    result = run_arrpo("judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url,
                       "--model", "m", "--no-cache")
    stderr = result.stderr.decode("utf-8")
    assert "Traceback" not in stderr and "[/bold] [red]x[/red]" in stderr, stderr[-2000:]
    assert [r["id"] for r in read_lines(out)] == ["m"]


def test_withheld_answers_are_named_and_tool_calls_read(scripted_server, make_image):
    """Issue 19: a refusal, a content filter and an answer only in ``tool_calls`` read as "empty
    answer" before; an error object sent with status 200 was retried as if transient."""
    server = scripted_server(hostile_handler)
    backend = build_backend(server.base_url, "m", max_retries=4, cache_path=False, retry_base_delay=0.01)
    judge = PairwiseJudge(backend, order="given")
    names = ["refusal-field", "content-filter", "content-filter-partial", "tool-call-only", "tool-call-object",
             "error-body-200", "error-body-200-vllm"]
    by_id = {v.id: v for v in judge.judge_many_sync([comparison(make_image, name) for name in names])}
    reasons = {name: by_id[name].invalid_reason or "" for name in names}
    assert "the model refused to answer: \"I can't help with comparing these images.\"" in reasons["refusal-field"]
    assert "content filter withheld the answer (finish_reason 'content_filter')" in reasons["content-filter"]
    assert "withheld the answer after 12 characters" in reasons["content-filter-partial"]
    assert by_id["tool-call-only"].winner == "B" and by_id["tool-call-only"].reason == "Image 2 is better."
    assert by_id["tool-call-object"].winner == "B"
    for name in ("error-body-200", "error-body-200-vllm"):
        assert reasons[name].startswith("backend error: server answered 200 with an error: This model's maximum "
                                        "context length is 8192 tokens"), reasons[name]
    assert all("empty answer" not in reason for reason in reasons.values())
    asked = {name: sum(1 for r in server.seen if case_of(r) == name) for name in names}
    # one request each: nothing here is transient (no HTTP retry) and no re-ask can help
    assert asked == dict.fromkeys(names, 1), asked


def test_an_error_body_with_a_retryable_code_is_retried(scripted_server, make_image):
    busy = {"error": {"message": "the engine is overloaded", "code": 503}}
    server = scripted_server(lambda request: Reply(body=busy) if server.requests <= 2 else Reply(text=GOOD))
    backend = build_backend(server.base_url, "m", max_retries=4, cache_path=False, retry_base_delay=0.01)
    verdict = PairwiseJudge(backend, order="given").judge_sync(comparison(make_image, "busy"))
    assert verdict.winner == "B" and server.requests == 3
