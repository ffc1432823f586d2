"""Run coroutines from synchronous code on one long-lived event loop.

Async HTTP clients keep connections bound to the loop that opened them, so each sync call
cannot use a fresh ``asyncio.run``; every sync wrapper in arrpo shares this background loop, and
so does the trainer's background judging (:class:`arrpo.rl.judging.BackgroundJudging`), which
starts its batches with :func:`run_in_background` and waits for them itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="arrpo-sync", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_in_background(coro: Coroutine[Any, Any, T]) -> Future[T]:
    """Start ``coro`` on the shared background loop; the future gives its result (or exception)."""
    return asyncio.run_coroutine_threadsafe(coro, _background_loop())


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on the shared background loop and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError("called a blocking arrpo method from inside an event loop; await the async one")
    return run_in_background(coro).result()
