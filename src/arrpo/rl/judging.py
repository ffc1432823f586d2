"""Judges as the trainer sees them, and the background judging that keeps them off the critical path.

Any object with ``async def judge(comparison) -> Verdict`` is a judge. :func:`build_judge` makes the
real rubric-conditioned VLM judge from the config (its backend opened like every other command's);
:class:`ChannelMeanJudge` is a deterministic programmatic judge for tests and demos.
:class:`BackgroundJudging` judges each batch of comparisons on arrpo's shared background loop
(:mod:`arrpo._sync`) and is the one place where an arbitrary judge enters training: a judge that
raises or times out gives that comparison a failed verdict, and :meth:`PendingVerdicts.result`
never raises. Groups paired by ``tournament`` are judged round by round
(:meth:`BackgroundJudging.submit_tournaments`), each comparison through the same guard.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from arrpo._sync import run_in_background
from arrpo.schema import Comparison, Verdict
from arrpo.tournament import Tournament, run_tournament
from arrpo.vocab import OnBadVerdict

log = logging.getLogger("arrpo.rl")
#: Seconds a batch may take beyond the per-comparison timeout before its verdicts are given up.
BATCH_GRACE_S = 30.0


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
        band = image.to_pil().getchannel(self.channel)
        return sum(i * n for i, n in enumerate(band.histogram())) / (band.width * band.height)

    async def judge(self, comparison: Comparison) -> Verdict:
        self.calls += 1
        n = self.calls
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.raise_every and n % self.raise_every == 0:
            raise RuntimeError(f"scripted judge failure on call {n}")
        if self.fail_every and n % self.fail_every == 0:
            return Verdict.failed("scripted invalid answer", id=comparison.id)
        a, b = self.score(comparison.image_a), self.score(comparison.image_b)
        if self.reverse:
            a, b = -a, -b
        winner = "A" if a > b else "B" if b > a else "tie"
        return Verdict(id=comparison.id, winner=winner, reason=f"channel {self.channel} means {a:.2f} vs {b:.2f}")


def build_judge(cfg) -> Judge:
    """The judge described by a :class:`arrpo.rl.config.JudgeConfig`.

    The VLM is opened by :func:`arrpo.vlm.settings.open_judge_backend`, exactly as ``arrpo judge``,
    ``rubric``, ``eval`` and ``serve`` open theirs; an evidence-only judge (``judge.evidence_only``)
    opens none and needs no endpoint.

    Raises:
        BackendUnavailable: the backend cannot be opened (no endpoint or model, an ``api_key_env``
            that is not set, local weights missing); the message says what to do.
    """
    if cfg.builtin is not None:
        return ChannelMeanJudge(channel=0, reverse=cfg.builtin.endswith("reversed"))
    from arrpo.judge import PairwiseJudge
    from arrpo.vlm.settings import open_judge_backend

    settings = cfg.judge_settings()
    backend = open_judge_backend(cfg.backend, settings)
    judge = PairwiseJudge(backend, settings)
    if cfg.prompt_rubrics:
        from arrpo.rubrics.write import RubricWriter

        return PromptRubricJudge(judge, RubricWriter(backend, cache_dir=cfg.rubric_cache_dir))
    return judge


class PromptRubricJudge:
    """Judge each comparison under the rubric written for its prompt (ARR's prompt-level rubrics).

    The writer asks the VLM once per prompt (and source image) and its
    :class:`~arrpo.rubrics.write.PromptRubrics` keeps the rubric (bounded in memory, and in
    ``judge.rubric_cache_dir`` when set), so a group's comparisons and later visits of the prompt
    reuse it. This class keeps only training's policy: a rubric that cannot be written makes the
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
            return Verdict.failed(f"no prompt rubric: {exc}", id=comparison.id)
        return await self.inner.judge(comparison.model_copy(update={"rubric": rubric}))


def load_rubric(path: str | None):
    """The rubric file of the judge config, or None for the direct judge."""
    if not path:
        return None
    from arrpo.rubric import Rubric

    return Rubric.load(path)


@dataclass(frozen=True)
class TournamentGroup:
    """One group to judge as a tournament (:mod:`arrpo.tournament`).

    ``comparison(i, j, id)`` makes the comparison of samples ``i`` (shown as A) and ``j``; ``name``
    prefixes the comparison ids (``<name>-<i>v<j>``); ``seed`` makes the pairs reproducible.
    """

    size: int
    seed: int | str
    comparison: Callable[[int, int, str], Comparison]
    name: str = "group"
    rounds: int | None = None
    on_bad_verdict: OnBadVerdict = "mask_group"

    def pair_id(self, i: int, j: int) -> str:
        return f"{self.name}-{i}v{j}"

    def plan(self) -> Tournament:
        return Tournament(self.size, seed=self.seed, rounds=self.rounds, on_bad_verdict=self.on_bad_verdict)


@dataclass(frozen=True)
class PlayedGroup:
    """A judged tournament group: the pairs played, in order, and their verdicts."""

    pairs: list[tuple[int, int]]
    verdicts: list[Verdict]


class PendingVerdicts:
    """The verdicts of a batch being judged in the background (one per comparison, in order; for
    tournaments one :class:`PlayedGroup` per group)."""

    def __init__(self, future: concurrent.futures.Future, ids: list[str | None], wait_s: float,
                 failed: Callable[[str], Any] | None = None):
        self._future = future
        self._ids = ids
        self._wait_s = wait_s
        self._failed = failed or (lambda cause: [Verdict.failed(cause, id=i) for i in ids])

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> None:
        self._future.cancel()

    def result(self) -> Any:
        """Wait for the verdicts; never raises. A batch that does not finish in time (a judge
        that blocks the loop) or whose judging was stopped gives every comparison a failed verdict
        (a tournament group: its first round's)."""
        try:
            return self._future.result(timeout=self._wait_s)
        except concurrent.futures.TimeoutError:
            self._future.cancel()
            cause = f"judging of the batch did not finish within {self._wait_s:g} s"
        except concurrent.futures.CancelledError:
            cause = "judging of the batch was stopped"
        log.warning("%s; its %d comparison(s) are invalid and their groups masked", cause, len(self._ids))
        return self._failed(cause)


class BackgroundJudging:
    """Judge batches of comparisons concurrently on arrpo's shared background event loop.

    ``timeout`` bounds each comparison; a batch is given up ``BATCH_GRACE_S`` seconds after that.
    """

    def __init__(self, judge: Judge, timeout: float = 600.0):
        self.judge = judge
        self.timeout = timeout
        self._pending: set[PendingVerdicts] = set()

    async def _one(self, comparison: Comparison) -> Verdict:
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self.judge.judge(comparison), self.timeout)
        except asyncio.TimeoutError:
            cause: Exception | str = f"judge timed out after {self.timeout:g} s"
        except Exception as exc:  # the one guard: a user's judge may be any object with a judge method
            cause = exc
        return Verdict.failed(cause, id=comparison.id, latency_s=time.perf_counter() - started)

    async def _many(self, comparisons: list[Comparison]) -> list[Verdict]:
        return list(await asyncio.gather(*(self._one(c) for c in comparisons)))

    def submit(self, comparisons: list[Comparison]) -> PendingVerdicts:
        """Start judging; ``result()`` of the answer gives one verdict per comparison, in order."""
        return self._track(PendingVerdicts(run_in_background(self._many(list(comparisons))),
                                           [c.id for c in comparisons], self.timeout + BATCH_GRACE_S))

    async def _play(self, group: TournamentGroup) -> PlayedGroup:
        async def judge_pair(i: int, j: int) -> Verdict:
            return await self._one(group.comparison(i, j, group.pair_id(i, j)))

        played = await run_tournament(group.size, judge_pair, seed=group.seed, rounds=group.rounds,
                                      on_bad_verdict=group.on_bad_verdict)
        return PlayedGroup(played.pairs, list(played.results))

    async def _tournaments(self, groups: list[TournamentGroup]) -> list[PlayedGroup]:
        return list(await asyncio.gather(*(self._play(g) for g in groups)))

    def submit_tournaments(self, groups: list[TournamentGroup]) -> PendingVerdicts:
        """Start judging each group as a tournament, its rounds one after another and the groups
        concurrently; ``result()`` of the answer gives one :class:`PlayedGroup` per group, in order.

        A batch is given up after ``timeout`` per round of its longest tournament plus
        ``BATCH_GRACE_S``; each group then gets its first round's pairs with failed verdicts.
        """
        groups = list(groups)
        firsts = [(g, g.plan().next_round()) for g in groups]

        def failed(cause: str) -> list[PlayedGroup]:
            return [PlayedGroup(pairs, [Verdict.failed(cause, id=g.pair_id(i, j)) for i, j in pairs])
                    for g, pairs in firsts]

        ids: list[str | None] = [g.pair_id(i, j) for g, pairs in firsts for i, j in pairs]
        rounds = max((g.plan().rounds for g in groups), default=1)
        return self._track(PendingVerdicts(run_in_background(self._tournaments(groups)), ids,
                                           self.timeout * rounds + BATCH_GRACE_S, failed))

    def _track(self, pending: PendingVerdicts) -> PendingVerdicts:
        self._pending = {p for p in self._pending if not p.done()} | {pending}
        return pending

    def judge_all(self, comparisons: list[Comparison]) -> list[Verdict]:
        """Judge a batch and wait for its verdicts (never raises)."""
        return self.submit(comparisons).result()

    def close(self) -> None:
        """Stop judging the batches still in progress (the shared loop keeps running)."""
        for pending in self._pending:
            pending.cancel()
        self._pending.clear()
