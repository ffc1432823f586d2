"""Append-only JSON Lines files: the crash-safe record of every long run.

Each record is written as one line and flushed (and fsynced) at once, so a killed run loses at
most the line being written. On reopening, a last line left without its newline is kept (the
newline is added) when it is a complete JSON value, and cut off only when it is torn, so resuming
never drops a finished record; torn lines are ignored on read. Resuming = reading the newest
record per id (:func:`latest_by_id`) and skipping what is done. Lines are always valid UTF-8: text
that cannot be encoded (a lone surrogate) is written as a JSON ``\\u`` escape instead, so the value
reads back unchanged.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete JSON object line of ``path`` (missing file: nothing; torn lines: skipped)."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as handle:
        for raw in handle:
            # a line torn inside a multi-byte character must not stop the reading
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(record, dict):
                yield record


def latest_by_id(
    path: str | Path, *, key: str = "id", keep: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, dict[str, Any]]:
    """The newest record per id of an append-only file: a later line of an id replaces an earlier
    one (a retried pair, a resumed run). Records without the ``key``, and those ``keep`` rejects
    (e.g. another ``kind`` of line), are left out; torn lines are skipped as in :func:`iter_records`."""
    latest: dict[str, dict[str, Any]] = {}
    for record in iter_records(path):
        if record.get(key) is not None and (keep is None or keep(record)):
            latest[str(record[key])] = record
    return latest


class JsonlWriter:
    """Appends records to a JSONL file, one flushed line each; thread-safe."""

    def __init__(self, path: str | Path, *, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._handle = self.path.open("ab")
        self._fsync = fsync
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = encode_line(record)
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


def encode_line(record: dict[str, Any]) -> bytes:
    """One JSONL line as UTF-8 bytes; text UTF-8 cannot hold (lone surrogates) is ``\\u``-escaped."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def _drop_torn_tail(path: Path) -> None:
    """Repair the end of a file a killed writer may have left without its last newline.

    A last line that is a complete JSON value was fully written (only its newline is missing):
    the newline is added so the next record starts on its own line. A last line that does not
    parse was torn mid-write: it is cut off, and its record is redone.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = path.read_bytes()
        start = data.rfind(b"\n") + 1
        if _is_complete(data[start:]):
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
        else:
            handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())


def _is_complete(line: bytes) -> bool:
    try:
        json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return bool(line.strip())
