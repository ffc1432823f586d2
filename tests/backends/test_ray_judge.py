"""RayPoolJudge's batching and failure handling, with a stand-in for the Ray runner."""

from __future__ import annotations

import asyncio

import pytest

from arrpo.scale.ray_judge import RayPoolJudge
from arrpo.schema import Comparison, Verdict
from arrpo.vlm import BackendUnavailable
from arrpo.vlm.wrappers import counting_retries


class FakeRunner:
    """Yields verdicts for the first ``ok`` comparisons of each batch, then fails (or not)."""

    def __init__(self, ok: int | None = None, error: Exception | None = None, retries: int = 0):
        self.ok, self.error, self.retries, self.batches = ok, error, retries, []

    def run_with_retries(self, comparisons):
        self.batches.append(len(comparisons))
        for index, c in enumerate(comparisons):
            if self.ok is not None and index >= self.ok:
                raise self.error or RuntimeError("chunk lost 3 times")
            yield index, Verdict(id=c.id, winner="A"), self.retries + index

    def shutdown(self):
        pass


def comparisons(make_image, n):
    return [Comparison(prompt=f"p{i}", image_a=make_image((i, 0, 0)), image_b=make_image((0, i, 0)), id=str(i))
            for i in range(n)]


async def judge_all(judge, items):
    return await asyncio.gather(*(judge.judge(c) for c in items))


def test_concurrent_calls_are_batched(make_image):
    runner = FakeRunner()
    verdicts = asyncio.run(judge_all(RayPoolJudge(runner, window_s=0.05), comparisons(make_image, 6)))
    assert [v.winner for v in verdicts] == ["A"] * 6 and [v.id for v in verdicts] == [str(i) for i in range(6)]
    assert runner.batches == [6]


def test_a_failing_batch_keeps_the_verdicts_that_came_back(make_image):
    verdicts = asyncio.run(judge_all(RayPoolJudge(FakeRunner(ok=2), window_s=0.05), comparisons(make_image, 4)))
    assert [v.winner for v in verdicts] == ["A", "A", "invalid", "invalid"]
    assert "chunk lost" in verdicts[3].invalid_reason


def test_an_unusable_backend_is_raised(make_image):
    judge = RayPoolJudge(FakeRunner(ok=0, error=BackendUnavailable("no API key")), window_s=0.01)
    with pytest.raises(BackendUnavailable, match="no API key"):
        asyncio.run(judge_all(judge, comparisons(make_image, 1)))


def test_worker_retries_reach_the_callers_tally(make_image):
    """A pair's ``calls`` (eval records) count the HTTP retries its worker needed."""
    judge = RayPoolJudge(FakeRunner(ok=2, retries=3), window_s=0.05)

    async def counted(c):
        with counting_retries() as tally:
            verdict = await judge.judge(c)
        return verdict.winner, tally.retries

    async def run():
        return await asyncio.gather(*(counted(c) for c in comparisons(make_image, 3)))

    assert asyncio.run(run()) == [("A", 3), ("A", 4), ("invalid", 0)]  # a lost one made no counted call
