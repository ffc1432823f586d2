"""Append-only JSON Lines files: the crash-safe record of every long run.

Each record is written as one line and flushed (and fsynced) at once, so a killed run loses at
most the line being written; a torn last line is ignored on read and truncated before the next
append. Resuming = reading the ids already present and skipping them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete JSON object line of ``path`` (missing file: nothing; torn lines: skipped)."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def read_done_ids(path: str | Path, key: str = "id") -> set[str]:
    """The ``key`` values of the records already in ``path``."""
    return {str(r[key]) for r in iter_records(path) if r.get(key) is not None}


class JsonlWriter:
    """Appends records to a JSONL file, one flushed line each; thread-safe."""

    def __init__(self, path: str | Path, *, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._handle = self.path.open("a", encoding="utf-8")
        self._fsync = fsync
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            if self._fsync:
                os.fsync(self._handle.fileno())

    def close(self) -> None:
        with self._lock:
            self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a killed writer left without its newline."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        handle.truncate(cut)
