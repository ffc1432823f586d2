"""Ray scale-out: an actor pool on a local 2-CPU Ray instance against the scripted VLM server."""

from __future__ import annotations

import asyncio
import functools
import os
import signal

import pytest

from arrpo.judge import PairwiseJudge
from arrpo.judge_settings import JudgeSettings
from arrpo.rubric import Rubric, Theme
from arrpo.scale.ray_runner import JudgeWorker, RayJudgeRunner, pack_chunk, unpack_chunk
from arrpo.schema import Comparison, Verdict
from arrpo.testing.scripted_server import ChatRequest, Reply, ScriptedVLMServer
from arrpo.vlm import build_backend
from arrpo.vlm.settings import BackendSettings

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the whole module (start-up takes seconds)."""
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.path.abspath(src)}})
    yield
    ray.shutdown()


class RedderWins:
    """Scripted judge: the image with more red wins; ``broken`` makes every answer garbage."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.broken = False

    def __call__(self, request: ChatRequest) -> Reply:
        if self.broken:
            return Reply(text="I cannot decide.", delay=self.delay)
        first, second = (sum(px[0] for px in im.getdata()) for im in request.images()[-2:])
        rank = [1, 2] if first >= second else [2, 1]
        return Reply(text=f'{{"rank": {rank}, "reason": "redder wins"}}', delay=self.delay)


def _comparisons(make_image, n: int) -> list[Comparison]:
    return [
        Comparison(prompt=f"a red apple #{i}", image_a=make_image((20 * i % 256, 0, 0)),
                   image_b=make_image((128, 5, 5)), id=f"c{i}")
        for i in range(n)
    ]


def _essence(verdict: Verdict) -> dict:
    """A verdict without its timings (which differ run to run) and without whether each answer came
    from the response cache (the Ray run below replays the first run's cache on purpose)."""
    data = verdict.model_dump(exclude={"latency_s"})
    for answer in data["answers"]:
        answer.pop("latency_s")
        answer.pop("cached")
    return data


def test_chunks_carry_image_bytes_once_and_round_trip(make_image):
    shared, other, source = make_image((1, 2, 3)), make_image((4, 5, 6)), make_image((7, 8, 9))
    rubric = Rubric(themes=[Theme(theme="Fidelity", tips=["Follows the prompt."])])
    items = [
        (0, Comparison(prompt="p", image_a=shared, image_b=other, id="x")),
        (5, Comparison(task="edit", prompt="make it blue", image_a=other, image_b=shared, source=source,
                       rubric=rubric, id="y")),
    ]
    packed = pack_chunk(items)
    assert len(packed["images"]) == 3  # the shared images travel once
    assert all(isinstance(blob[0], bytes) for blob in packed["images"].values())
    unpacked = unpack_chunk(packed)
    assert [i for i, _ in unpacked] == [0, 5]
    assert [c.key() for _, c in unpacked] == [c.key() for _, c in items]
    assert unpacked[1][1].rubric == rubric and unpacked[1][1].source == source


def test_ray_verdicts_equal_the_single_process_run(ray_local, make_image, tmp_path):
    handler = RedderWins()
    with ScriptedVLMServer(handler) as server:
        comparisons = _comparisons(make_image, 12)
        cache = tmp_path / "cache.sqlite"
        local_backend = build_backend(server.base_url, "scripted", cache_path=cache)
        expected = PairwiseJudge(local_backend, order="both").judge_many_sync(comparisons)
        assert {v.winner for v in expected} == {"A", "B"}
        asked = server.requests

        # Same cached responses: the Ray workers must hit the cache for every request.
        handler.broken = True
        settings = BackendSettings(endpoint=server.base_url, model="scripted", cache_path=str(cache))
        runner = RayJudgeRunner(settings, JudgeSettings(order="both"), num_workers=2, chunk_size=3)
        try:
            got = dict(runner.run(comparisons))
        finally:
            runner.shutdown()
        assert server.requests == asked
        assert sorted(got) == list(range(12))
        assert [_essence(got[i]) for i in range(12)] == [_essence(v) for v in expected]
        assert all(a.cached for i in range(12) for a in got[i].answers)  # every answer a cache hit

        # And without a cache, live answers give the same verdicts.
        handler.broken = False
        live = BackendSettings(endpoint=server.base_url, model="scripted", cache=False)
        runner = RayJudgeRunner(live, JudgeSettings(order="both"), num_workers=2, chunk_size=5)
        try:
            again = dict(runner.run(comparisons))
        finally:
            runner.shutdown()
        assert [again[i].winner for i in range(12)] == [v.winner for v in expected]
        assert server.requests == asked + 24


def test_a_worker_killed_mid_run_loses_no_comparisons(ray_local, make_image):
    with ScriptedVLMServer(RedderWins(delay=0.3)) as server:
        comparisons = _comparisons(make_image, 16)
        expected = [("A" if (20 * i % 256) >= 128 else "B") for i in range(16)]
        settings = BackendSettings(endpoint=server.base_url, model="scripted", cache=False)
        runner = RayJudgeRunner(settings, JudgeSettings(order="given"), num_workers=2, chunk_size=2, chunks_in_flight=2)
        got: dict[int, Verdict] = {}
        try:
            stream = runner.run(comparisons)
            index, verdict = next(stream)
            got[index] = verdict
            victim = ray.get(runner.workers[0].pid.remote())
            os.kill(victim, signal.SIGKILL)  # the worker dies with chunks in flight
            for index, verdict in stream:
                assert index not in got  # nothing twice
                got[index] = verdict
        finally:
            runner.shutdown()
        assert sorted(got) == list(range(16))
        assert [got[i].winner for i in range(16)] == expected
        assert runner.stats.resubmitted >= 1
        assert runner.stats.workers_replaced >= 1


def _first_attempt_busy(judge):
    """Answer 503 (Retry-After 0) to the first attempt of every distinct request, then ``judge``."""
    seen: set[str] = set()

    def handler(request: ChatRequest) -> Reply:
        key = repr(request.body)
        if key not in seen:
            seen.add(key)
            return Reply(status=503, headers={"Retry-After": "0"})
        return judge(request)

    return handler


def test_a_worker_reports_retries_and_turns_a_failing_pair_into_its_invalid_verdict(make_image):
    with ScriptedVLMServer(_first_attempt_busy(RedderWins())) as server:
        settings = BackendSettings(endpoint=server.base_url, model="scripted", cache=False, max_retries=2)
        worker = JudgeWorker(settings, JudgeSettings(order="both").model_dump_json())
        chunk = pack_chunk(list(enumerate(_comparisons(make_image, 3))))
        chunk["rows"][1]["rubric"] = '{"themes": "not a list"}'  # this pair cannot even be rebuilt
        results = asyncio.run(worker.judge_chunk(chunk))
    assert [(index, retries) for index, _, retries in results] == [(0, 2), (1, 0), (2, 2)]  # 2 orders, 1 retry each
    verdicts = [Verdict.model_validate_json(payload) for _, payload, _ in results]
    assert [v.winner for v in verdicts] == ["B", "invalid", "B"]
    assert verdicts[1].id == "c1" and verdicts[1].invalid_reason.startswith("judge failed on this pair: ValidationError")


def test_a_worker_judges_with_the_settings_sent_as_json(make_image):
    """What crosses to a worker is the settings' JSON: every field reaches its judge's requests."""
    with ScriptedVLMServer(RedderWins()) as server:
        backend = BackendSettings(endpoint=server.base_url, model="scripted", cache=False)
        settings = JudgeSettings(order="given", temperature=0.3, max_tokens=40, max_answer_chars=12)
        rubric = Rubric(themes=[Theme(theme="Redness", tips=["Redder is better."])])
        worker = JudgeWorker(backend, settings.model_dump_json(), rubric.model_dump_json())
        results = asyncio.run(worker.judge_chunk(pack_chunk(list(enumerate(_comparisons(make_image, 2))))))
        seen = list(server.seen)
    assert {(r.body["temperature"], r.body["max_tokens"]) for r in seen} == {(0.3, 40)} and len(seen) == 2
    assert all("Redder is better." in r.text for r in seen)  # the default rubric travelled too
    verdicts = [Verdict.model_validate_json(payload) for _, payload, _ in results]
    assert all(len(v.answers[0].raw) < 12 + 60 for v in verdicts)


def test_a_failing_task_ends_as_its_pairs_invalid_verdicts_and_retries_are_counted(ray_local, make_image):
    # a picklable factory that raises ValueError on the worker (not BackendUnavailable: no user action)
    broken = functools.partial(int, "no backend here")
    runner = RayJudgeRunner(broken, JudgeSettings(order="given"), num_workers=1, chunk_size=2)
    try:
        got = {index: verdict for index, verdict in runner.run(_comparisons(make_image, 3))}
    finally:
        runner.shutdown()
    assert sorted(got) == [0, 1, 2] and {v.winner for v in got.values()} == {"invalid"}
    assert all("ValueError" in v.invalid_reason and "no backend here" in v.invalid_reason for v in got.values())
    assert [got[i].id for i in range(3)] == ["c0", "c1", "c2"]

    with ScriptedVLMServer(_first_attempt_busy(RedderWins())) as server:
        settings = BackendSettings(endpoint=server.base_url, model="scripted", cache=False, max_retries=2)
        runner = RayJudgeRunner(settings, JudgeSettings(order="given"), num_workers=2, chunk_size=2)
        try:
            counted = {index: (v.winner, retries) for index, v, retries in runner.run_with_retries(
                _comparisons(make_image, 4))}
        finally:
            runner.shutdown()
    assert counted == {i: ("B", 1) for i in range(4)}  # image_a is the less red one
