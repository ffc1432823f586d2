"""The append-only record of a learning run: a header line, then one line per finished pair.

A run that is killed loses at most the pairs it was working on; restarted with the same settings
it reads the finished pairs back and does only the rest. Settings that change what a pair's outcome
would be (task, K, T_max, verification order, seeds, model, guide, prompt templates) are fixed in
the header. A restart with different ones follows the project's one rule for changed settings
(:mod:`arrpo.jobs`): the old state is set aside (renamed ``….stale-TIME.jsonl``) and learning
starts over, never mixing two experiments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arrpo.errors import ArrpoError
from arrpo.jobs import SetAside, set_aside_if_changed
from arrpo.jsonl import JsonlWriter, iter_records, latest_by_id


class LearnStateError(ArrpoError, ValueError, kind="conflict"):
    """The file is not a learning state (pair records without a header)."""


def recorded_fingerprint(path: str | Path) -> dict[str, Any] | None:
    """The settings in the state's header (``None``: no state, or no header yet).

    Raises:
        LearnStateError: the file has pair records but no header: it is not an arrpo learning state.
    """
    path = Path(path)
    has_pairs = False
    for record in iter_records(path):
        if record.get("kind") == "header":
            fingerprint = record.get("fingerprint")
            return fingerprint if isinstance(fingerprint, dict) else {}
        has_pairs = has_pairs or record.get("kind") == "pair"
    if has_pairs:
        raise LearnStateError(f"{path}: has pair records but no header; not an arrpo learning state")
    return None


def prepare_state(path: str | Path, fingerprint: dict[str, Any]) -> SetAside | None:
    """Apply the changed-settings rule: a state written under another ``fingerprint`` is set aside
    (returned, to be reported); a state with the same one is left to be resumed."""
    return set_aside_if_changed(path, recorded_fingerprint(path), fingerprint)


def read_state(path: str | Path) -> dict[str, dict[str, Any]]:
    """Finished pair records by id (the newest record of an id wins)."""
    return latest_by_id(path, keep=lambda record: record.get("kind") == "pair")


def open_state(path: str | Path, fingerprint: dict[str, Any]) -> JsonlWriter:
    """Open the state file for appending, writing the header first when it has none."""
    path = Path(path)
    fresh = recorded_fingerprint(path) is None
    writer = JsonlWriter(path)
    if fresh:
        writer.write({"kind": "header", "fingerprint": fingerprint})
    return writer
