"""A judge whose comparisons run on a Ray actor pool, for code written against ``judge()``.

:class:`RayPoolJudge` has the judge interface (``async judge(comparison) -> Verdict``), so
``arrpo eval --ray`` (or any caller of a judge) scales out unchanged: concurrent calls are gathered
into batches and each batch runs through :class:`~arrpo.scale.ray_runner.RayJudgeRunner`, which
resends the chunks of workers that die. Comparisons of a batch that still fails end as ``invalid``
verdicts with the reason (those already judged keep their verdicts); :class:`~arrpo.vlm.base.BackendUnavailable` (workers cannot open the backend) is raised.
"""

from __future__ import annotations

from typing import Any

from arrpo.schema import Comparison, Verdict
from arrpo.vlm.base import BackendError, BackendUnavailable
from arrpo.vlm.batching import MicroBatcher


class RayPoolJudge:
    """``judge(comparison)`` on a :class:`RayJudgeRunner` pool, batched."""

    def __init__(self, runner: Any, *, max_batch_size: int = 256, window_s: float = 0.05):
        self.runner = runner
        self._batcher = MicroBatcher(self._run_batch, max_batch_size=max_batch_size, window_s=window_s)

    def _run_batch(self, comparisons: list[Comparison]) -> list[Verdict]:  # type: ignore[override]
        verdicts: dict[int, Verdict] = {}
        reason = "ray: no verdict came back"
        try:
            for index, verdict in self.runner.run(comparisons):
                verdicts[index] = verdict
        except BackendUnavailable:
            raise
        except Exception as exc:  # lost chunks, cluster gone: the rest end invalid, the run goes on
            reason = f"ray: {type(exc).__name__}: {exc}"
        return [verdicts.get(i) or Verdict(id=c.id, winner="invalid", invalid_reason=reason)
                for i, c in enumerate(comparisons)]

    async def judge(self, comparison: Comparison) -> Verdict:
        try:
            return await self._batcher.submit(comparison)  # type: ignore[arg-type]
        except BackendUnavailable:
            raise
        except BackendError as exc:
            return Verdict(id=comparison.id, winner="invalid", invalid_reason=f"ray: {exc}")

    def shutdown(self) -> None:
        self.runner.shutdown()
