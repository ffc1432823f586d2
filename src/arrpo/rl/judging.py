"""Judges as the trainer sees them, and the background thread that keeps judging off the critical path.

Any object with ``async def judge(comparison) -> Verdict`` is a judge. :func:`build_judge` makes the
real rubric-conditioned VLM judge from the config (its backend opened like every other command's);
:class:`ChannelMeanJudge` is a deterministic programmatic judge for tests and demos.
:class:`BackgroundJudging` runs an asyncio loop in a thread; each batch of comparisons becomes a
``concurrent.futures.Future`` and never raises: an exception or timeout becomes an ``invalid`` verdict.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Protocol

from arrpo.schema import Comparison, Verdict


class Judge(Protocol):
    """The judge interface the trainer consumes."""

    async def judge(self, comparison: Comparison) -> Verdict: ...


class ChannelMeanJudge:
    """Prefers the image with the higher (``reverse``: lower) mean of one RGB channel.

    ``latency`` seconds of simulated delay per comparison (for benchmarks); ``fail_every`` makes
    every n-th comparison invalid and ``raise_every`` raise (for robustness tests).
    """

    def __init__(self, channel: int = 0, reverse: bool = False, latency: float = 0.0, fail_every: int = 0, raise_every: int = 0):
        self.channel, self.reverse, self.latency = channel, reverse, latency
        self.fail_every, self.raise_every = fail_every, raise_every
        self.calls = 0

    def score(self, image) -> float:
        pixels = list(image.to_pil().getdata(band=self.channel))
        return sum(pixels) / len(pixels)

    async def judge(self, comparison: Comparison) -> Verdict:
        self.calls += 1
        n = self.calls
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.raise_every and n % self.raise_every == 0:
            raise RuntimeError(f"scripted judge failure on call {n}")
        if self.fail_every and n % self.fail_every == 0:
            return Verdict(id=comparison.id, winner="invalid", invalid_reason="scripted invalid answer")
        a, b = self.score(comparison.image_a), self.score(comparison.image_b)
        if self.reverse:
            a, b = -a, -b
        winner = "A" if a > b else "B" if b > a else "tie"
        return Verdict(id=comparison.id, winner=winner, reason=f"channel {self.channel} means {a:.2f} vs {b:.2f}")


def build_judge(cfg) -> Judge:
    """The judge described by a :class:`arrpo.rl.config.JudgeConfig`.

    The VLM is opened by :func:`arrpo.vlm.settings.open_backend`, exactly as ``arrpo judge``,
    ``rubric``, ``eval`` and ``serve`` open theirs.

    Raises:
        BackendUnavailable: the backend cannot be opened (no endpoint or model, an ``api_key_env``
            that is not set, local weights missing); the message says what to do.
    """
    if cfg.builtin is not None:
        return ChannelMeanJudge(channel=0, reverse=cfg.builtin.endswith("reversed"))
    from arrpo.judge import PairwiseJudge
    from arrpo.vlm.settings import open_backend

    backend = open_backend(cfg.backend)
    judge = PairwiseJudge(backend, cfg.judge_settings())
    if cfg.prompt_rubrics:
        from arrpo.rubrics.write import RubricWriter

        return PromptRubricJudge(judge, RubricWriter(backend, cache_dir=cfg.rubric_cache_dir))
    return judge


class PromptRubricJudge:
    """Judge each comparison under the rubric written for its prompt (ARR's prompt-level rubrics).

    The writer asks the VLM once per prompt (and source image) and caches the rubric, so a group's
    comparisons and later visits of the prompt reuse it. A rubric that cannot be written makes the
    verdict ``invalid`` (the group is then masked), never a crash.
    """

    def __init__(self, inner: Judge, writer):
        self.inner = inner
        self.writer = writer

    async def judge(self, comparison: Comparison) -> Verdict:
        from arrpo.rubrics.write import RubricWriteError

        try:
            rubric = await self.writer.write_prompt(comparison.task, comparison.prompt, comparison.source)
        except RubricWriteError as exc:
            return Verdict(id=comparison.id, winner="invalid", invalid_reason=f"no prompt rubric: {exc}")
        return await self.inner.judge(comparison.model_copy(update={"rubric": rubric}))


def load_rubric(path: str | None):
    """The rubric file of the judge config, or None for the direct judge."""
    if not path:
        return None
    from arrpo.rubric import Rubric

    return Rubric.load(path)


class BackgroundJudging:
    """Judge batches of comparisons concurrently on a private event loop thread."""

    def __init__(self, judge: Judge, timeout: float = 600.0):
        self.judge = judge
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="arrpo-judge", daemon=True)
        self._thread.start()

    async def _one(self, comparison: Comparison) -> Verdict:
        start = time.perf_counter()
        try:
            return await asyncio.wait_for(self.judge.judge(comparison), self.timeout)
        except asyncio.TimeoutError:
            reason = f"judge timed out after {self.timeout:.0f}s"
        except Exception as exc:  # a judge failure must never stop training
            reason = f"judge raised {type(exc).__name__}: {exc}"
        return Verdict(id=comparison.id, winner="invalid", invalid_reason=reason, latency_s=time.perf_counter() - start)

    async def _many(self, comparisons: list[Comparison]) -> list[Verdict]:
        return list(await asyncio.gather(*(self._one(c) for c in comparisons)))

    def submit(self, comparisons: list[Comparison]) -> Future:
        """Start judging; the future's result is one verdict per comparison, in order."""
        return asyncio.run_coroutine_threadsafe(self._many(comparisons), self._loop)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
