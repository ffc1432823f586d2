"""BackgroundJudging is the one guard where an arbitrary judge enters training: whatever the judge
does (raise, hang, block the loop), each comparison gets a verdict and ``result()`` never raises."""

from __future__ import annotations

import asyncio
import io
import time

from PIL import Image

from arrpo.images import load_image
from arrpo.rl import judging
from arrpo.rl.judging import BackgroundJudging
from arrpo.schema import FAILED_PREFIX, Comparison, Verdict


def _image(color):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return load_image(buffer.getvalue())


def _comparisons(n: int) -> list[Comparison]:
    return [Comparison(prompt=f"p{k}", image_a=_image((k, 0, 0)), image_b=_image((0, k, 0)), id=f"c{k}")
            for k in range(n)]


class Moody:
    """A user's judge: answers, raises, or hangs, by the comparison's prompt."""

    def __init__(self, block_s: float = 0.0):
        self.block_s = block_s

    async def judge(self, comparison: Comparison) -> Verdict:
        if comparison.prompt == "p1":
            raise RuntimeError("the judge's own bug")
        if comparison.prompt == "p2":
            await asyncio.sleep(60)
        if comparison.prompt == "p3" and self.block_s:
            time.sleep(self.block_s)  # blocks the event loop: no timeout can interrupt it
        return Verdict(id=comparison.id, winner="A")


def test_a_raising_or_hanging_judge_gives_failed_verdicts_for_its_comparisons_only():
    background = BackgroundJudging(Moody(), timeout=0.3)
    try:
        verdicts = background.submit(_comparisons(3)).result()
    finally:
        background.close()
    assert [v.id for v in verdicts] == ["c0", "c1", "c2"]
    assert [v.winner for v in verdicts] == ["A", "invalid", "invalid"]
    assert verdicts[1].invalid_reason == f"{FAILED_PREFIX}RuntimeError: the judge's own bug"
    assert verdicts[2].invalid_reason == "judge timed out after 0.3 s"


def test_a_judge_that_blocks_the_loop_gives_the_batch_failed_verdicts(monkeypatch):
    monkeypatch.setattr(judging, "BATCH_GRACE_S", 0.1)
    background = BackgroundJudging(Moody(block_s=1.5), timeout=0.1)
    try:
        verdicts = background.judge_all(_comparisons(4))
    finally:
        background.close()
    assert [v.id for v in verdicts] == ["c0", "c1", "c2", "c3"]
    assert {v.winner for v in verdicts} == {"invalid"}
    assert all("did not finish within 0.2 s" in v.invalid_reason for v in verdicts)


def test_closing_stops_the_batches_in_progress():
    background = BackgroundJudging(Moody(), timeout=30)
    pending = background.submit(_comparisons(3))
    background.close()
    verdicts = pending.result()
    assert {v.winner for v in verdicts} == {"invalid"}
    assert all(v.invalid_reason == "judging of the batch was stopped" for v in verdicts)


def _tournament(size: int, prompt: str = "p0", **extra) -> judging.TournamentGroup:
    def comparison(i: int, j: int, id: str) -> Comparison:
        return Comparison(prompt=prompt, image_a=_image((i, 0, 0)), image_b=_image((j, 0, 0)), id=id)

    return judging.TournamentGroup(size, seed="s", comparison=comparison, name=f"g{size}", **extra)


def test_tournament_groups_are_played_through_the_same_guard():
    background = BackgroundJudging(Moody(), timeout=0.3)
    try:
        played = background.submit_tournaments([_tournament(8), _tournament(4, "p1", on_bad_verdict="drop_pair")]).result()
    finally:
        background.close()
    first, second = played
    assert len(first.pairs) == len(first.verdicts) == 16 and {v.winner for v in first.verdicts} == {"A"}
    assert [v.id for v in first.verdicts] == [f"g8-{i}v{j}" for i, j in first.pairs]
    assert len(second.pairs) == 6 and {v.winner for v in second.verdicts} == {"invalid"}  # raised: invalid


def test_a_tournament_batch_given_up_gets_its_first_rounds_failed_verdicts(monkeypatch):
    monkeypatch.setattr(judging, "BATCH_GRACE_S", 0.1)
    background = BackgroundJudging(Moody(block_s=1.5), timeout=0.05)
    try:
        (played,) = background.submit_tournaments([_tournament(4, "p3")]).result()
    finally:
        background.close()
    assert played.pairs == _tournament(4).plan().next_round() and len(played.pairs) == 2
    assert {v.winner for v in played.verdicts} == {"invalid"}
    assert all("did not finish within" in v.invalid_reason for v in played.verdicts)
