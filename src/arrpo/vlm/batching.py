"""Collect concurrent requests into batches for in-process backends.

``await batcher.submit(request)`` queues a request; a drain task waits ``window_s`` for more
callers, takes up to ``max_batch_size`` requests with the same batch key and runs the blocking
``run_batch`` function in a worker thread (one batch at a time), so the event loop never blocks
on the model and every caller gets its own response or the batch's error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from arrpo.vlm.base import BackendError, VLMRequest, VLMResponse

RunBatch = Callable[[list[VLMRequest]], list[VLMResponse]]


@dataclass
class _Pending:
    request: VLMRequest
    future: asyncio.Future


class MicroBatcher:
    """Batch concurrent requests for a blocking ``run_batch(requests) -> responses`` function."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int = 8,
        window_s: float = 0.01,
        key: Callable[[VLMRequest], Hashable] = lambda _: None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.key = key
        self.batches = 0  # batches run (for tests and benchmarks)
        self._run_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._drainer: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, request: VLMRequest) -> VLMResponse:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: the old one's queue is gone with it
            self._loop, self._pending, self._drainer = loop, [], None
        future: asyncio.Future = loop.create_future()
        self._pending.append(_Pending(request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(self.window_s)
            batch = self._take()
            if batch:
                await self._run(batch)

    def _take(self) -> list[_Pending]:
        self._pending = [p for p in self._pending if not p.future.done()]
        if not self._pending:
            return []
        wanted = self.key(self._pending[0].request)
        batch, rest = [], []
        for item in self._pending:
            if len(batch) < self.max_batch_size and self.key(item.request) == wanted:
                batch.append(item)
            else:
                rest.append(item)
        self._pending = rest
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        try:
            responses = await asyncio.to_thread(self._locked_run, [p.request for p in batch])
            if len(responses) != len(batch):
                raise BackendError(f"batch of {len(batch)} requests got {len(responses)} answers")
        except BackendError as exc:
            self._fail(batch, exc)
            return
        except Exception as exc:
            self._fail(batch, BackendError(f"local generation failed: {type(exc).__name__}: {exc}"))
            return
        for item, response in zip(batch, responses, strict=True):
            if not item.future.done():
                item.future.set_result(response)

    def _locked_run(self, requests: list[VLMRequest]) -> list[VLMResponse]:
        with self._run_lock:
            self.batches += 1
            return self.run_batch(requests)

    @staticmethod
    def _fail(batch: list[_Pending], error: BackendError) -> None:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(error)
