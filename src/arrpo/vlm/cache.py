"""A persistent response cache in one SQLite file, safe for concurrent use.

Keyed by :meth:`VLMRequest.fingerprint` (backend model id + messages with image hashes +
sampling parameters). Only successful responses are stored. Many processes may share the file
(WAL mode, busy timeout); inside one process calls are serialised by a lock and run in a thread
so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path

from platformdirs import user_cache_dir

from arrpo.schema import Usage
from arrpo.vlm.base import VLMBackend, VLMRequest, VLMResponse


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
        with self._lock:
            row = self._db.execute(
                "SELECT text, usage, model, finish_reason FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        text, usage, model, finish = row
        return VLMResponse(text=text, usage=Usage(**json.loads(usage)), model=model or "",
                           finish_reason=finish, cached=True)

    def put(self, key: str, response: VLMResponse) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (key, response.text, response.usage.model_dump_json(), response.model,
                 response.finish_reason),
            )

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
        await asyncio.to_thread(self.cache.put, key, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
