"""``arrpo.jobs``: the one resumable loop (bounded, a failure per item, cancel on a fatal error, resume
after a kill, torn lines, repeated ids), the changed-settings rule, and ``judge_pair_file`` from Python."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arrpo.jobs import (
    PairFileJob,
    judge_pair_file,
    run_items,
    set_aside_if_changed,
    settings_changes,
    stale_path,
)
from arrpo.jsonl import JsonlWriter, iter_records, latest_by_id
from arrpo.judge import PairwiseJudge
from arrpo.rubric import Rubric
from arrpo.vlm import build_backend
from arrpo.vlm.base import BackendUnavailable
from tests.core.test_cli_judge import brighter_wins, pair_dir, write_pairs  # noqa: F401  (pair_dir: a fixture)

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _loop(path: Path, items, work, *, concurrency: int = 4, failure=None) -> int:
    """run_items appending ``{"id", "value"}`` records to ``path`` (the shape every job writes)."""

    async def run() -> int:
        with JsonlWriter(path) as writer:
            return await run_items(
                items, work, concurrency=concurrency,
                failure=failure or (lambda item, exc: {"id": item, "error": f"{type(exc).__name__}: {exc}"}),
                write=lambda _item, record: writer.write(record),
            )

    return asyncio.run(run())


def test_at_most_concurrency_items_are_in_flight_and_each_is_recorded_once(tmp_path):
    in_flight, peak, done = 0, 0, []

    async def work(item: str) -> dict:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return {"id": item, "value": item.upper()}

    async def run() -> int:
        with JsonlWriter(tmp_path / "out.jsonl") as writer:
            return await run_items([f"i{n}" for n in range(20)], work, concurrency=3,
                                   failure=lambda item, exc: {"id": item},
                                   write=lambda _item, record: writer.write(record),
                                   on_done=lambda item, record: done.append(item))

    assert asyncio.run(run()) == 20
    assert peak == 3 and sorted(done) == sorted(f"i{n}" for n in range(20))
    records = list(iter_records(tmp_path / "out.jsonl"))
    assert sorted(r["id"] for r in records) == sorted(f"i{n}" for n in range(20))


def test_an_item_that_raises_becomes_its_failure_record_and_the_rest_go_on(tmp_path):
    async def work(item: str) -> dict:
        if item == "i3":
            raise KeyError("surprise")
        return {"id": item, "value": 1}

    assert _loop(tmp_path / "out.jsonl", [f"i{n}" for n in range(6)], work) == 6
    records = latest_by_id(tmp_path / "out.jsonl")
    assert records["i3"] == {"id": "i3", "error": "KeyError: 'surprise'"}
    assert all(records[f"i{n}"]["value"] == 1 for n in (0, 1, 2, 4, 5))


def test_a_fatal_error_cancels_the_rest_and_what_was_written_stays(tmp_path):
    started: list[str] = []
    out = tmp_path / "out.jsonl"

    async def work(item: str) -> dict:
        started.append(item)
        if item == "i5":
            while len(out.read_bytes().splitlines()) < 5:  # the items before it are written first
                await asyncio.sleep(0.005)
            raise BackendUnavailable("no endpoint configured")
        if item in ("i6", "i7"):
            await asyncio.sleep(30)  # in flight when the fatal error comes: cancelled, never written
        return {"id": item, "value": 1}

    begun = time.monotonic()
    with pytest.raises(BackendUnavailable, match="no endpoint"):
        _loop(out, [f"i{n}" for n in range(100)], work, concurrency=3)
    assert time.monotonic() - begun < 20  # the sleeping items were cancelled, not awaited
    assert "i99" not in started and len(started) < 12  # nothing new was started after it
    written = latest_by_id(out)
    assert set(written) == {"i0", "i1", "i2", "i3", "i4"}
    assert len(out.read_bytes().splitlines()) == 5  # every line complete, none twice

    # the rerun does only the rest
    redone: list[str] = []

    async def again(item: str) -> dict:
        redone.append(item)
        return {"id": item, "value": 2}

    todo = [f"i{n}" for n in range(100) if f"i{n}" not in written]
    assert _loop(out, todo, again) == 95
    assert sorted(redone) == sorted(todo) and len(latest_by_id(out)) == 100


def test_a_record_that_cannot_be_written_stops_the_run_and_the_rest_resumes(tmp_path):
    out = tmp_path / "out.jsonl"
    calls = []

    async def work(item: str) -> dict:
        await asyncio.sleep(0.001 * int(item[1:]))
        return {"id": item}

    async def run() -> None:
        with JsonlWriter(out) as writer:
            def write(_item, record) -> None:
                calls.append(record["id"])
                if len(calls) == 3:
                    raise OSError(28, "No space left on device")
                writer.write(record)

            await run_items([f"i{n}" for n in range(10)], work, concurrency=1,
                            failure=lambda item, exc: {"id": item}, write=write)

    with pytest.raises(OSError, match="No space left"):
        asyncio.run(run())
    assert set(latest_by_id(out)) == {"i0", "i1"}  # never a failure record claiming it was judged


def test_resume_after_a_kill_mid_file(tmp_path):
    """A real SIGKILL while items are being written: the rerun keeps every complete line, redoes
    the torn one and the unfinished items, and works on no finished item again."""
    out = tmp_path / "out.jsonl"
    script = (
        "import asyncio, sys\n"
        "from arrpo.jobs import run_items\n"
        "from arrpo.jsonl import JsonlWriter\n"
        "async def work(item):\n"
        "    await asyncio.sleep(0.02)\n"
        "    return {'id': item, 'pad': 'x' * 2000}\n"
        "async def main():\n"
        "    with JsonlWriter(sys.argv[1]) as writer:\n"
        "        await run_items([f'i{n}' for n in range(500)], work, concurrency=2,\n"
        "                        failure=lambda i, e: {'id': i}, write=lambda i, r: writer.write(r))\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(out)], env={"PYTHONPATH": SRC})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 20):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    with out.open("ab") as handle:  # as a kill in the middle of a write leaves it
        handle.write(b'{"id": "i499", "pad": "xx')
    finished = latest_by_id(out)
    assert 20 <= len(finished) < 500 and "i499" not in finished

    redone: list[str] = []

    async def again(item: str) -> dict:
        redone.append(item)
        return {"id": item, "pad": ""}

    todo = [f"i{n}" for n in range(500) if f"i{n}" not in finished]
    _loop(out, todo, again)
    assert not set(redone) & set(finished) and "i499" in redone
    lines = out.read_bytes().splitlines()
    assert [json.loads(line)["id"] for line in lines].count("i499") == 1  # the torn line was cut off
    assert sorted(latest_by_id(out)) == sorted(f"i{n}" for n in range(500))


def test_latest_by_id_keeps_the_newest_record_of_a_repeated_id(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": "a", "v": 1}\n{"kind": "header"}\n{"id": "b", "v": 1}\n{"id": "a", "v": 2}\n'
                    '{"id": 7, "v": 3}\n{"id": "b", "v": 2, "kind": "error"}\n{"id": "a", "v": 3')
    assert latest_by_id(path) == {"a": {"id": "a", "v": 2}, "b": {"id": "b", "v": 2, "kind": "error"},
                                  "7": {"id": 7, "v": 3}}
    assert latest_by_id(path, keep=lambda r: r.get("kind") != "error")["b"] == {"id": "b", "v": 1}
    assert latest_by_id(tmp_path / "missing.jsonl") == {}


# ------------------------------------------------------------------------- the changed-settings rule
def test_records_made_under_other_settings_are_set_aside_never_mixed(tmp_path):
    path = tmp_path / "verdicts.jsonl"
    assert set_aside_if_changed(path, {"k": 3}, {"k": 4}) is None  # no records: nothing to set aside
    path.write_text('{"id": "p1"}\n')
    assert set_aside_if_changed(path, None, {"k": 4}) is None and path.exists()  # nothing recorded: resumed
    assert set_aside_if_changed(path, {"k": 4}, {"k": 4}) is None and path.exists()  # unchanged: resumed
    aside = set_aside_if_changed(path, {"k": 3, "rubric": "a" * 200}, {"k": 4, "rubric": "b" * 200})
    assert aside is not None and not path.exists()
    assert aside.changes == ("k: 3 -> 4", "rubric") and aside.moved_to.read_text() == '{"id": "p1"}\n'
    assert aside.moved_to.name.startswith("verdicts.stale-") and aside.moved_to.suffix == ".jsonl"
    assert "k: 3 -> 4" in aside.message() and str(aside.moved_to) in aside.message()
    path.write_text("again\n")
    second = set_aside_if_changed(path, {"k": 4}, {"k": 5})  # in the same second: another name
    assert second is not None and second.moved_to != aside.moved_to and aside.moved_to.exists()
    assert stale_path(tmp_path / "state").name.startswith("state.stale-")


def test_settings_changes_names_what_changed():
    assert settings_changes({"a": 1, "b": "x", "gone": True}, {"a": 1, "b": "y", "new": {"nested": 1}}) == [
        "b: 'x' -> 'y'", "new", "gone: True -> None"]


# ------------------------------------------------------------------------- judge_pair_file from Python
def test_judge_pair_file_from_python_resumes_and_sets_aside_on_a_changed_rubric(pair_dir, scripted_server):  # noqa: F811
    server = scripted_server(brighter_wins())
    pairs, out = write_pairs(pair_dir, 4), pair_dir / "verdicts.jsonl"
    seen: list[str] = []

    async def judge_file(rubric=None, **kwargs):
        backend = build_backend(server.base_url, "m", cache_path=False, max_retries=0)
        try:
            judge = PairwiseJudge(backend, order="given", rubric=rubric)
            return await judge_pair_file(judge, pairs, out, on_verdict=lambda v: seen.append(v.id), **kwargs)
        finally:
            await backend.aclose()

    result = asyncio.run(judge_file())
    assert result.judged == 6 and result.resumed == 0 and result.set_aside is None
    assert [result.latest[f"p{i}"]["winner"] for i in range(4)] == ["A", "B", "A", "B"]
    assert result.latest["bad"]["winner"] == "invalid" and result.invalid_reasons()[0].startswith("bad input:")
    assert sorted(seen) == sorted(result.ids)
    settings = json.loads((pair_dir / "verdicts.jsonl.settings.json").read_text())
    assert settings["order"] == "given" and settings["model"] == "m" and settings["rubric_sha256"] is None

    again = asyncio.run(judge_file())
    assert again.judged == 0 and again.resumed == 6 and server.requests == 5

    rubric = Rubric.from_criteria(["The brighter image wins."], task="t2i")
    changed = asyncio.run(judge_file(rubric=rubric))
    assert changed.set_aside is not None and len(changed.set_aside.changes) == 1
    assert changed.set_aside.changes[0].startswith("rubric_sha256: None -> ")
    assert changed.judged == 6 and server.requests == 10 and len(list(iter_records(out))) == 6
    assert "Theme: The brighter image wins." in server.seen[-1].text
    assert len(list(iter_records(changed.set_aside.moved_to))) == 6


def test_no_backend_at_all_stops_a_pair_file_and_the_rerun_resumes(pair_dir, scripted_server):  # noqa: F811
    class Unavailable:
        model_id = "none"

        def __init__(self, limit: int):
            self.limit, self.calls = limit, 0

        async def complete(self, request):
            self.calls += 1
            if self.calls > self.limit:
                raise BackendUnavailable("the endpoint went away")
            await asyncio.sleep(0.01)
            from arrpo.vlm.base import VLMResponse

            return VLMResponse(text='{"rank": [1, 2], "reason": "first"}')

    pairs, out = write_pairs(pair_dir, 12), pair_dir / "verdicts.jsonl"
    job = PairFileJob.plan(pairs, out)
    with pytest.raises(BackendUnavailable):
        asyncio.run(job.run(PairwiseJudge(Unavailable(limit=3), order="given"), concurrency=2))
    kept = latest_by_id(out)
    assert 1 <= len([v for v in kept.values() if v["winner"] == "A"]) <= 3  # answered pairs were kept
    assert not [v for v in kept.values() if "went away" in str(v.get("invalid_reason"))]  # no false verdicts
    rerun = PairFileJob.plan(pairs, out)
    assert rerun.done == len(kept) and len(rerun.todo) == 14 - len(kept)
