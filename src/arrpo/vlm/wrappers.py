"""Behaviour that wraps any backend: retries with backoff, a concurrency limit, accounting.

Wrappers are composed, not subclassed: ``Retrying(Limited(OpenAIBackend(...), 16))``. The limit
sits inside the retry so a request waiting out its backoff does not hold a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from arrpo.schema import Usage
from arrpo.vlm.base import BackendError, VLMBackend, VLMRequest, VLMResponse

_Layer = TypeVar("_Layer")


def find_layer(backend: Any, layer: type[_Layer]) -> _Layer | None:
    """The outermost ``layer`` (a wrapper or backend class) in a wrapper stack, following each
    wrapper's ``inner``; ``None`` when the stack has none."""
    for _ in range(32):  # a stack is a handful of wrappers; a cycle must not hang the caller
        if backend is None:
            return None
        if isinstance(backend, layer):
            return backend
        backend = getattr(backend, "inner", None)
    return None


class Limited:
    """At most ``max_concurrency`` requests in flight to the inner backend."""

    def __init__(self, inner: VLMBackend, max_concurrency: int):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.inner = inner
        self.max_concurrency = max_concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self.max_concurrency), loop
        return self._semaphore

    async def complete(self, request: VLMRequest) -> VLMResponse:
        async with self._sem():
            return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class RetryTally:
    """Retries counted by :class:`Retrying` while a :func:`counting_retries` block is active."""

    retries: int = 0


_TALLY: contextvars.ContextVar[RetryTally | None] = contextvars.ContextVar("arrpo_retry_tally", default=None)


@contextlib.contextmanager
def counting_retries() -> Iterator[RetryTally]:
    """Count the retries made by the requests awaited inside the block (this task and its children).

    ``with counting_retries() as tally: verdict = await judge.judge(c)`` → ``tally.retries``:
    the extra model calls the retry wrapper made beyond one per request, so callers can report
    every call (a request the cache answers never reaches the retry wrapper: no call, no retry). Tasks started inside the block share the tally; others are not counted.
    """
    tally = RetryTally()
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


def add_retries(count: int) -> None:
    """Add ``count`` retries made elsewhere (e.g. by a Ray worker for this caller's comparison) to
    the active :func:`counting_retries` tally, if any."""
    tally = _TALLY.get()
    if tally is not None and count > 0:
        tally.retries += count


class Retrying:
    """Retry retryable :class:`BackendError` s with exponential backoff and jitter.

    A server's ``Retry-After`` is honoured (capped at ``max_delay``). After ``max_retries``
    further attempts the last error is raised with the attempt count in its message.
    """

    def __init__(
        self,
        inner: VLMBackend,
        max_retries: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        rng: random.Random | None = None,
    ):
        self.inner = inner
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._rng = rng or random.Random()
        self.retries = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def delay_for(self, attempt: int, error: BackendError) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        backoff = self.base_delay * (2 ** (attempt - 1))
        return min(backoff * (0.5 + self._rng.random() / 2), self.max_delay)

    async def complete(self, request: VLMRequest) -> VLMResponse:
        attempt = 0
        while True:
            try:
                return await self.inner.complete(request)
            except BackendError as error:
                if not error.retryable or attempt >= self.max_retries:
                    if attempt:
                        raise BackendError(
                            f"{error} (gave up after {attempt + 1} attempts)",
                            retryable=False,
                            status=error.status,
                        ) from error
                    raise
                attempt += 1
                self.retries += 1
                tally = _TALLY.get()
                if tally is not None:
                    tally.retries += 1
                await asyncio.sleep(self.delay_for(attempt, error))

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class UsageTotals:
    requests: int = 0
    cached: int = 0
    errors: int = 0
    usage: Usage = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.usage is None:
            self.usage = Usage()


class Metered:
    """Count requests, cache hits, errors and tokens passing through (outermost wrapper)."""

    def __init__(self, inner: VLMBackend):
        self.inner = inner
        self.totals = UsageTotals()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    async def complete(self, request: VLMRequest) -> VLMResponse:
        self.totals.requests += 1
        try:
            response = await self.inner.complete(request)
        except BackendError:
            self.totals.errors += 1
            raise
        if response.cached:
            self.totals.cached += 1
        else:
            self.totals.usage = self.totals.usage + response.usage
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
