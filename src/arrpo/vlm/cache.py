"""A persistent response cache in one SQLite file, safe for concurrent use.

Keyed by :meth:`VLMRequest.fingerprint` (backend model id + messages with image hashes +
sampling parameters). Only successful responses are stored, as valid UTF-8. Many processes may
share the file (WAL mode, busy timeout); inside one process calls are serialised by a lock and
run in a thread so the event loop never blocks on disk.

The cache is an optimisation and never fails a call: a row that cannot be read (written by an
older version, damaged) is dropped and counted as a miss, a response that cannot be stored is
returned unstored, and :func:`forget_cached` drops an answer the caller could not handle, so a
rerun asks the model again instead of meeting the same answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from arrpo.schema import Usage
from arrpo.text import valid_utf8
from arrpo.vlm.base import VLMBackend, VLMRequest, VLMResponse

log = logging.getLogger(__name__)


def default_cache_path() -> Path:
    """``<user cache dir>/arrpo/responses.sqlite`` (override with ``ARRPO_CACHE_DIR``)."""
    import os

    root = os.environ.get("ARRPO_CACHE_DIR") or user_cache_dir("arrpo")
    return Path(root) / "responses.sqlite"


class ResponseCache:
    """SQLite key → response store."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=30000")
        for attempt in range(50):  # switching to WAL can race with another process opening the file
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
                    " usage TEXT NOT NULL, model TEXT, finish_reason TEXT)"
                )
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.05)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> VLMResponse | None:
        """The stored response, or ``None`` (a row that cannot be read is dropped: a miss)."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, usage, model, finish_reason FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is not None:
            try:
                response = _response_from_row(row)
            except Exception as exc:  # written by another version, or damaged
                log.warning("dropping an unreadable cached response (%s: %s)", type(exc).__name__, exc)
                self.delete(key)
                row = None
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return response

    def put(self, key: str, response: VLMResponse) -> None:
        """Store ``response`` (its text as valid UTF-8)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (key, valid_utf8(response.text), response.usage.model_dump_json(), response.model,
                 response.finish_reason),
            )

    def delete(self, key: str) -> None:
        """Forget the response stored under ``key`` (nothing if there is none)."""
        with self._lock:
            self._db.execute("DELETE FROM responses WHERE key = ?", (key,))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Cached:
    """Answer repeated requests from a :class:`ResponseCache`; ask the inner backend otherwise."""

    def __init__(self, inner: VLMBackend, cache: ResponseCache):
        self.inner = inner
        self.cache = cache

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    async def complete(self, request: VLMRequest) -> VLMResponse:
        key = request.fingerprint(self.inner.model_id)
        hit = await asyncio.to_thread(self.cache.get, key)
        if hit is not None:
            return hit
        response = await self.inner.complete(request)
        response.text = valid_utf8(response.text) if isinstance(response.text, str) else response.text
        if not isinstance(response.text, str):
            return response  # not an answer worth keeping; the caller reports it
        try:
            await asyncio.to_thread(self.cache.put, key, response)
        except (sqlite3.Error, ValueError, TypeError) as exc:
            log.warning("response not cached (%s: %s)", type(exc).__name__, exc)
        return response

    async def forget(self, request: VLMRequest) -> None:
        """Drop the cached answer to ``request`` (one the caller could not handle)."""
        await asyncio.to_thread(self.cache.delete, request.fingerprint(self.inner.model_id))

    async def aclose(self) -> None:
        await self.inner.aclose()


def _response_from_row(row: tuple[Any, ...]) -> VLMResponse:
    text, usage, model, finish = row
    if not isinstance(text, str):
        raise TypeError(f"stored text is {type(text).__name__}")
    return VLMResponse(text=text, usage=Usage(**json.loads(usage)), model=model or "",
                       finish_reason=finish, cached=True)


async def forget_cached(backend: Any, request: VLMRequest) -> None:
    """Drop the answer to ``request`` from the first :class:`Cached` layer in a wrapper stack.

    Never raises: forgetting is best effort (there may be no cache at all).
    """
    layer, depth = backend, 0
    while layer is not None and depth < 16:
        if isinstance(layer, Cached):
            try:
                await layer.forget(request)
            except Exception as exc:
                log.warning("could not drop a cached response (%s: %s)", type(exc).__name__, exc)
            return
        layer, depth = getattr(layer, "inner", None), depth + 1
