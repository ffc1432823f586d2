"""Killed runs resume: finished pairs are not redone, and the rubric equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arrpo.jsonl import iter_records
from arrpo.rubric import Rubric
from arrpo.rubrics import LearnConfig, LearnStateError, RubricLearner, read_seeds
from arrpo.testing.scripted_server import Reply

from .seeing_vlm import SeeingVLM

KINDS = ["first", "refine", "drop", "first", "refine", "first", "drop", "first", "refine", "first"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


class SimulatedCrash(BaseException):
    """Stands in for a kill: not an Exception, so nothing in the pipeline may swallow it."""


class CrashAfter:
    """Backend wrapper that records requests and 'dies' at request number ``limit``."""

    def __init__(self, inner, limit: int | None = None):
        self.inner, self.limit, self.requests = inner, limit, []

    @property
    def model_id(self):
        return self.inner.model_id

    async def complete(self, request):
        if self.limit is not None and len(self.requests) >= self.limit:
            raise SimulatedCrash()
        self.requests.append(request)
        return await self.inner.complete(request)

    async def aclose(self):
        await self.inner.aclose()


def _comparable(result):
    outcomes = [o.model_dump(exclude={"usage"}) for o in result.outcomes]
    rubric = result.rubric.model_dump(exclude={"provenance": {"created"}})
    return outcomes, rubric


def _prompts(requests, kind_text: str) -> set[str]:
    found = set()
    for request in requests:
        text = "\n".join(p.text for m in request.messages for p in m.parts if hasattr(p, "text"))
        if kind_text in text:
            found.update(line for line in text.splitlines() if line.startswith("Caption: "))
    return found


async def test_crash_and_resume_equals_uninterrupted(seed_dir, seeing, backend_for, tmp_path):
    _, server = seeing()
    seeds = read_seeds(seed_dir(KINDS), task="t2i")
    config = LearnConfig(task="t2i", k=3, t_max=2, pair_concurrency=3)
    cache = tmp_path / "cache.sqlite"

    reference = await RubricLearner(backend_for(server, cache), config).learn(seeds, tmp_path / "ref.state.jsonl")

    state = tmp_path / "run.state.jsonl"
    crashing = CrashAfter(backend_for(server, cache), limit=13)
    with pytest.raises(SimulatedCrash):
        await RubricLearner(crashing, config).learn(seeds, state)
    finished = {r["id"] for r in iter_records(state) if r.get("kind") == "pair"}
    assert 0 < len(finished) < len(KINDS)

    resuming = CrashAfter(backend_for(server, cache))
    result = await RubricLearner(resuming, config).learn(seeds, state)
    assert result.resumed == len(finished)
    assert _comparable(result) == _comparable(reference)
    assert result.summary == reference.summary
    # finished pairs were not asked about again
    finished_captions = {f"Caption: {p.prompt}" for p in seeds.pairs if p.id in finished}
    assert not _prompts(resuming.requests, '"criteria"') & finished_captions
    # one record per pair in the state file, header first
    records = list(iter_records(state))
    assert records[0]["kind"] == "header"
    assert sorted(r["id"] for r in records[1:] if r["kind"] == "pair") == sorted(p.id for p in seeds.pairs)
    assert records[-1]["kind"] == "structure"  # then what structuring made of them


async def test_torn_last_line_and_changed_settings(seed_dir, seeing, backend_for, tmp_path):
    _, server = seeing()
    seeds = read_seeds(seed_dir(["first", "refine", "first"]), task="t2i")
    config = LearnConfig(task="t2i", k=2, t_max=1)
    state = tmp_path / "state.jsonl"
    first = await RubricLearner(backend_for(server), config).learn(seeds, state)
    lines = [line for line in state.read_text().splitlines(keepends=True) if '"kind":"structure"' not in line]
    state.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a kill mid-write
    again = await RubricLearner(backend_for(server), config).learn(seeds, state)
    assert again.resumed == 2
    assert _comparable(again) == _comparable(first)
    # structuring settings may change: the pairs are reused, only the structuring call is new
    fewer = await RubricLearner(backend_for(server), config.model_copy(update={"max_themes": 1})).learn(seeds, state)
    assert fewer.resumed == 3 and len(fewer.rubric.themes) == 1 and fewer.set_aside is None
    # a setting that decides the outcomes: the old state is set aside (kept), learning starts over
    before = state.read_bytes()
    notes: list[str] = []
    changed = await RubricLearner(backend_for(server), config.model_copy(update={"t_max": 3})).learn(
        seeds, state, on_note=notes.append)
    assert changed.resumed == 0 and changed.set_aside is not None and changed.rubric is not None
    assert changed.set_aside.changes == ("t_max: 1 -> 3",)
    assert changed.set_aside.moved_to.read_bytes() == before and changed.set_aside.moved_to.name.startswith("state.stale-")
    assert len(notes) == 1 and "t_max: 1 -> 3" in notes[0] and "set aside" in notes[0]
    header = next(iter_records(state))
    assert header["kind"] == "header" and header["fingerprint"]["t_max"] == 3


async def test_a_file_that_is_not_a_learning_state_is_refused(seed_dir, seeing, backend_for, tmp_path):
    _, server = seeing()
    seeds = read_seeds(seed_dir(["first"]), task="t2i")
    state = tmp_path / "state.jsonl"
    state.write_text(json.dumps({"kind": "pair", "id": "first-0", "status": "dropped"}) + "\n")
    with pytest.raises(LearnStateError, match="not an arrpo learning state"):
        await RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2)).learn(seeds, state)


async def test_backend_failures_leave_pairs_unfinished_until_a_rerun(seed_dir, seeing, backend_for, tmp_path):
    broken = {"on": True}

    def fail_refine(request, default):
        return Reply(status=500) if broken["on"] else default

    _vlm, server = seeing({"refine": fail_refine})
    seeds = read_seeds(seed_dir(["first", "refine", "first"]), task="t2i")
    config = LearnConfig(task="t2i", k=2, t_max=1)
    state = tmp_path / "state.jsonl"
    result = await RubricLearner(backend_for(server), config).learn(seeds, state)
    assert result.rubric is None and list(result.errors) == ["refine-1"]
    assert "rerun" in result.message or "again" in result.message
    assert result.summary.failed == 1 and result.summary.passed_first == 2
    partial = await RubricLearner(backend_for(server), config).learn(seeds, tmp_path / "p.jsonl",
                                                                    allow_incomplete=True)
    assert partial.rubric is not None and partial.rubric.provenance.pairs == 3
    broken["on"] = False
    done = await RubricLearner(backend_for(server), config).learn(seeds, state)
    assert done.rubric is not None and done.resumed == 2 and done.summary.refined == 1


def _learn_cli(seeds: Path, out: Path, base_url: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "arrpo", "rubric", "learn", "--pairs", str(seeds), "--task", "t2i",
         "--out", str(out), "--k", "3", "--t-max", "2", "--pair-concurrency", "1",
         "--endpoint", base_url, "--model", "seeing", "--cache-path", str(cache), "--max-retries", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_cli_killed_with_sigkill_resumes_to_the_same_rubric(seed_dir, scripted_server, tmp_path):
    vlm = SeeingVLM()

    def slow(request):
        reply = vlm(request)
        reply = reply if isinstance(reply, Reply) else Reply(text=reply)
        reply.delay = 0.03
        return reply

    server = scripted_server(slow)
    seeds = seed_dir(KINDS)
    cache = tmp_path / "cache.sqlite"

    killed_out = tmp_path / "killed.json"
    state = Path(str(killed_out) + ".state.jsonl")
    proc = _learn_cli(seeds, killed_out, server.base_url, cache)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state.exists() and sum(r.get("kind") == "pair" for r in iter_records(state)) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not killed_out.exists()
    finished = [r for r in iter_records(state) if r.get("kind") == "pair"]
    assert 3 <= len(finished) < len(KINDS)

    generations_before = vlm.kinds["generate"]
    resumed = _learn_cli(seeds, killed_out, server.base_url, cache)
    output = resumed.communicate(timeout=60)[0]
    assert resumed.returncode == 0, output
    assert f"resuming: {len(finished)} of {len(KINDS)}" in output
    assert "first-pass rate" in output
    # only unfinished pairs were generated again (a pair in flight at the kill may be asked twice)
    assert vlm.kinds["generate"] - generations_before <= len(KINDS) - len(finished) + 1

    straight_out = tmp_path / "straight.json"
    straight = _learn_cli(seeds, straight_out, server.base_url, cache)
    assert straight.wait(60) == 0
    killed_rubric, straight_rubric = Rubric.load(killed_out), Rubric.load(straight_out)
    assert killed_rubric.render() == straight_rubric.render()
    for field in ("pairs", "passed_first", "refined", "dropped"):
        assert getattr(killed_rubric.provenance, field) == getattr(straight_rubric.provenance, field)
    assert json.loads(killed_out.read_text())["provenance"]["dropped"] == KINDS.count("drop")


async def test_a_backend_failure_in_one_of_both_orders_leaves_the_pair_unfinished(
    seed_dir, seeing, backend_for, tmp_path
):
    # with verify_order="both", a 500 on one order is not the model's judgement: the pair must not be
    # refined (or dropped) because of it, but stay unfinished and be learned on a rerun
    broken = {"on": True}

    def fail_bright_first(request, default):
        from .seeing_vlm import _parts, features

        first = [v for k, v in _parts(request, 0) if k == "image"][-2]
        return Reply(status=500) if broken["on"] and features(first)["bright"] > 0.5 else default

    vlm, server = seeing({"judge": fail_bright_first})
    seeds = read_seeds(seed_dir(["first", "first"]), task="t2i")
    config = LearnConfig(task="t2i", k=2, t_max=2, verify_order="both")
    state = tmp_path / "state.jsonl"
    result = await RubricLearner(backend_for(server), config).learn(seeds, state)
    assert vlm.kinds["refine"] == 0
    assert sorted(result.errors) == ["first-0", "first-1"] and result.summary.decided == 0
    broken["on"] = False
    done = await RubricLearner(backend_for(server), config).learn(seeds, state)
    assert done.summary.passed_first == 2 and done.rubric is not None
