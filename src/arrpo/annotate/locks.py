"""One writer per output file: an exclusive POSIX lock held for a page's life.

Two pages writing one file would each act on their own view of it (the label page rebuilds the seed
file from its answers only; the review page would mark a pair twice). The lock is advisory, tied to
the open file, and released when the process ends, a kill included.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO


def exclusive_lock(path: Path) -> IO[str] | None:
    """An open handle of ``path`` (created if missing) holding its exclusive lock, or ``None`` when
    another process holds it. Where POSIX locks do not exist (Windows) the handle holds no lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a", encoding="utf-8")
    try:
        import fcntl
    except ImportError:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle
