"""A judge whose comparisons run on a Ray actor pool, for code written against ``judge()``.

:class:`RayPoolJudge` has the judge interface (``async judge(comparison) -> Verdict``, and
``async ask(comparison, order) -> OrderAnswer`` for a pool of ``given``-order judges), so
``arrpo eval --ray`` (or any caller of a judge) scales out unchanged: concurrent calls are gathered
into batches and each batch runs through :class:`~arrpo.scale.ray_runner.RayJudgeRunner`, which
resends the chunks of workers that die. The HTTP retries a worker needed for a comparison are
added to the caller's :func:`~arrpo.vlm.wrappers.counting_retries` tally (a pair's ``calls``).
Comparisons of a batch that still fails end as ``invalid``
verdicts with the reason (those already judged keep their verdicts); :class:`~arrpo.vlm.base.BackendUnavailable` (workers cannot open the backend) is raised.
"""

from __future__ import annotations

from typing import Any

from arrpo.schema import Comparison, Order, OrderAnswer, Verdict
from arrpo.vlm.base import BackendError, BackendUnavailable
from arrpo.vlm.batching import MicroBatcher
from arrpo.vlm.wrappers import add_retries


class RayPoolJudge:
    """``judge(comparison)`` on a :class:`RayJudgeRunner` pool, batched."""

    def __init__(self, runner: Any, *, max_batch_size: int = 256, window_s: float = 0.05):
        self.runner = runner
        self._batcher = MicroBatcher(self._run_batch, max_batch_size=max_batch_size, window_s=window_s)

    def _run_batch(self, comparisons: list[Comparison]) -> list[tuple[Verdict, int]]:  # type: ignore[override]
        done: dict[int, tuple[Verdict, int]] = {}
        reason = "ray: no verdict came back"
        try:
            for index, verdict, retries in self.runner.run_with_retries(comparisons):
                done[index] = (verdict, retries)
        except BackendUnavailable:
            raise
        except Exception as exc:  # lost chunks, cluster gone: the rest end invalid, the run goes on
            reason = f"ray: {type(exc).__name__}: {exc}"
        return [done.get(i) or (Verdict.failed(reason, id=c.id), 0) for i, c in enumerate(comparisons)]

    async def judge(self, comparison: Comparison) -> Verdict:
        """Judge on the pool. The HTTP retries the worker needed are added to the caller's
        :func:`~arrpo.vlm.wrappers.counting_retries` tally, so a pair's ``calls`` include them."""
        try:
            verdict, retries = await self._batcher.submit(comparison)  # type: ignore[arg-type,misc]
        except BackendUnavailable:
            raise
        except BackendError as exc:
            return Verdict.failed(f"ray: {exc}", id=comparison.id)
        add_retries(retries)
        return verdict

    async def ask(self, comparison: Comparison, order: Order) -> OrderAnswer:
        """One order on the pool, for a pool whose judges ask in the given order (``order:
        given``): ``BA`` sends the comparison with A and B exchanged and maps the answer back."""
        shown = comparison if order == "AB" else comparison.swapped()
        verdict = await self.judge(shown)
        if not verdict.answers:  # the comparison failed before any answer (a lost chunk, a bad row)
            return OrderAnswer(order=order, winner="invalid", invalid_reason=verdict.invalid_reason,
                               latency_s=verdict.latency_s)
        answer = verdict.answers[0]
        winner = {"A": "B", "B": "A"}.get(answer.winner, answer.winner) if order == "BA" else answer.winner
        return answer.model_copy(update={"order": order, "winner": winner})

    def shutdown(self) -> None:
        self.runner.shutdown()
