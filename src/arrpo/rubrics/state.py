"""The append-only record of a learning run: a header line, then one line per finished pair.

A run that is killed loses at most the pair it was writing; restarted with the same settings it
reads the finished pairs back and does only the rest. Settings that change what a pair's outcome
would be (task, K, T_max, verification order, seeds, model, guide) are fixed in the header; a
restart with different ones is refused instead of silently mixing two experiments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arrpo.errors import ArrpoError
from arrpo.jsonl import JsonlWriter, iter_records


class LearnStateError(ArrpoError, ValueError, kind="conflict"):
    """The state file belongs to a run with different settings (or is not a state file)."""


def read_state(path: str | Path, fingerprint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished pair records by id (the last record of an id wins).

    Raises:
        LearnStateError: the header's fingerprint differs from ``fingerprint``.
    """
    path = Path(path)
    header: dict[str, Any] | None = None
    pairs: dict[str, dict[str, Any]] = {}
    for record in iter_records(path):
        kind = record.get("kind")
        if kind == "header" and header is None:
            header = record
        elif kind == "pair" and record.get("id") is not None:
            pairs[str(record["id"])] = record
    if header is None:
        if pairs:
            raise LearnStateError(f"{path}: has pair records but no header; not an arrpo learning state")
        return {}
    recorded = header.get("fingerprint", {})
    changed = sorted(k for k in set(recorded) | set(fingerprint) if recorded.get(k) != fingerprint.get(k))
    if changed:
        details = ", ".join(f"{k}: {recorded.get(k)!r} -> {fingerprint.get(k)!r}" for k in changed)
        raise LearnStateError(
            f"{path} was written by a run with other settings ({details}). Use the same settings to "
            "resume, another --state file, or --restart to discard it."
        )
    return pairs


def open_state(path: str | Path, fingerprint: dict[str, Any]) -> JsonlWriter:
    """Open the state file for appending, writing the header first when it is new."""
    path = Path(path)
    fresh = not any(r.get("kind") == "header" for r in iter_records(path))
    writer = JsonlWriter(path)
    if fresh:
        writer.write({"kind": "header", "fingerprint": fingerprint})
    return writer
