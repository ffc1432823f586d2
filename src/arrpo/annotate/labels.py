"""The labels of one annotator: an append-only event log, and the seed file rebuilt from it.

Every answer is one fsynced line of the **log** (``<out stem>.log.jsonl`` beside ``--out``)::

    {"event": "label", "id": "p1", "label": "B", "left": "B", "chosen": "left", "seconds": 3.2, ...}
    {"event": "skip",  "id": "p2", "left": "A", ...}
    {"event": "undo",  "id": "p1", ...}

Replaying the log gives the current answers (the latest event per pair wins; ``undo`` removes the
pair's answer). After each event the **seed file** ``--out`` is rewritten atomically from the
replay: one line per pair labelled A or B, in the project JSONL that ``arrpo rubric learn --pairs``
reads (absolute image paths; ties and skips stay in the log only). A kill between the two writes
loses nothing: the seed file is rebuilt from the log at the next start.

``label`` always names the input's A/B, whichever side each image was shown on; ``left`` records
the side shown on the left, so position bias can be measured afterwards.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrpo.annotate.items import LabelInputError, LabelItem
from arrpo.annotate.locks import exclusive_lock
from arrpo.annotate.stats import PositionBias, position_bias
from arrpo.datasets.pairs import ImageRef, coin
from arrpo.errors import ArrpoError
from arrpo.jsonl import JsonlWriter, encode_line, iter_records
from arrpo.text import preview

CHOICES = ("left", "right", "tie", "skip")
MAX_SECONDS = 24 * 3600.0


class LabelStateError(ArrpoError, ValueError, kind="conflict"):
    """An answer cannot be recorded (unknown pair, already answered, ties not allowed)."""


def log_path_for(out: str | Path) -> Path:
    """The event log beside a seed file: ``seeds.jsonl`` → ``seeds.log.jsonl``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.log.jsonl")


def shown_left(seed: int | str, annotator: str, pair_id: str) -> str:
    """Which input image (``A``/``B``) is shown on the left: a seeded coin per annotator and pair."""
    return "B" if coin(f"{seed}:{annotator}", pair_id) else "A"


@dataclass
class Replay:
    """The answers of a log: latest event per pair, and the order they were given in."""

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)

    def apply(self, record: dict[str, Any]) -> None:
        pair_id = record.get("id")
        event = record.get("event")
        if not isinstance(pair_id, str) or event not in ("label", "skip", "undo"):
            return
        if pair_id in self.answers:
            del self.answers[pair_id]
            self.history.remove(pair_id)
        if event != "undo":
            self.answers[pair_id] = record
            self.history.append(pair_id)


def replay(path: str | Path) -> Replay:
    """Replay a label log (missing file: no answers; torn or foreign lines are ignored)."""
    state = Replay()
    for record in iter_records(path):
        state.apply(record)
    return state


def read_label_records(path: str | Path) -> dict[str, dict[str, Any]]:
    """Pair id → the current label record of a label log or a seed file.

    A seed file whose log lies beside it is read through the log (which also holds ties).
    """
    path = Path(path)
    records = list(iter_records(path))
    if not any("event" in r for r in records):
        log = log_path_for(path)
        if log.exists():
            return read_label_records(log)
        return {str(r["id"]): r for r in records if r.get("id") is not None and r.get("label")}
    state = Replay()
    for record in records:
        state.apply(record)
    return {i: r for i, r in state.answers.items() if r.get("event") == "label" and r.get("label")}


def read_labels(path: str | Path) -> dict[str, str]:
    """Pair id → label (``A``/``B``/``tie``) of a label log or a seed file."""
    return {i: str(r["label"]) for i, r in read_label_records(path).items()}


def side_answers(records: dict[str, dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """(chosen side, side shown left, None) per record that says which side was left, for
    :func:`~arrpo.annotate.stats.position_bias`."""
    answers = []
    for record in records.values():
        left, label = record.get("left"), record.get("label")
        if left not in ("A", "B") or label not in ("A", "B", "tie"):
            continue
        chosen = "tie" if label == "tie" else ("left" if label == left else "right")
        answers.append((chosen, str(left), None))
    return answers


class LabelBook:
    """One annotator's labelling session over a list of items (thread-safe use: one request at a time)."""

    def __init__(self, items: Sequence[LabelItem], out: str | Path, *, annotator: str = "",
                 seed: int = 0, allow_ties: bool = False):
        self.items = list(items)
        self.index = {item.id: n for n, item in enumerate(self.items)}
        self.out = Path(out)
        self.log_path = log_path_for(self.out)
        self.annotator = annotator
        self.seed = seed
        self.allow_ties = allow_ties
        self.images_dir = self.out.with_name(f"{self.out.stem}.images")
        if self.out.exists() and (not self.out.is_file() or (self.out.stat().st_size and not self.log_path.exists())):
            raise LabelInputError(
                f"{self.out} exists but has no label log beside it ({self.log_path.name}), so it was not "
                "written by arrpo label; it would be replaced. Choose another --out."
            )
        self._lock = _lock_log(self.log_path)
        try:
            self.state = replay(self.log_path)
            self.writer = JsonlWriter(self.log_path)
            self.write_seeds()
        except BaseException:
            self._lock.close()
            raise

    # ---------------------------------------------------------------- reading
    def left_of(self, item: LabelItem) -> str:
        return shown_left(self.seed, self.annotator, item.id)

    def current(self) -> tuple[int, LabelItem] | None:
        """The next pair without an answer, in input order (None when all are answered)."""
        for n, item in enumerate(self.items):
            if item.id not in self.state.answers:
                return n, item
        return None

    def progress(self) -> dict[str, int]:
        answers = [self.state.answers[i] for i in self.index if i in self.state.answers]
        labelled = sum(1 for a in answers if a["event"] == "label")
        skipped = sum(1 for a in answers if a["event"] == "skip")
        ties = sum(1 for a in answers if a.get("label") == "tie")
        return {"total": len(self.items), "labelled": labelled, "skipped": skipped, "ties": ties,
                "left": len(self.items) - labelled - skipped}

    def seconds(self) -> list[float]:
        return [float(a.get("seconds") or 0.0) for a in self.state.answers.values() if a["event"] == "label"]

    def median_seconds(self) -> float | None:
        values = self.seconds()
        return statistics.median(values) if values else None

    def bias(self) -> PositionBias:
        answers = []
        for pair_id, record in self.state.answers.items():
            if record["event"] != "label" or pair_id not in self.index:
                continue
            given = self.items[self.index[pair_id]].given_label
            answers.append((str(record.get("chosen")), str(record.get("left")), given))
        return position_bias(answers)

    def agreement_with_input(self) -> tuple[int, int]:
        """(pairs labelled that had a label in the input, of which the same label)."""
        both = same = 0
        for pair_id, record in self.state.answers.items():
            if record["event"] != "label" or pair_id not in self.index:
                continue
            given = self.items[self.index[pair_id]].given_label
            if given is not None:
                both += 1
                same += given == record.get("label")
        return both, same

    # ---------------------------------------------------------------- writing
    def answer(self, pair_id: str, choice: str, seconds: float | None = None) -> dict[str, Any]:
        """Record ``choice`` (left/right/tie/skip) for the pair; returns the logged record."""
        if choice not in CHOICES:
            raise LabelStateError(f"choice must be one of {', '.join(CHOICES)} (got {preview(choice)})")
        if pair_id not in self.index:
            raise LabelStateError(f"unknown pair {preview(pair_id)}")
        if pair_id in self.state.answers:
            raise LabelStateError(f"pair {pair_id!r} is already answered (undo it first)")
        if choice == "tie" and not self.allow_ties:
            raise LabelStateError("ties are not allowed in this session (start it with --allow-ties)")
        item = self.items[self.index[pair_id]]
        left = self.left_of(item)
        record: dict[str, Any] = {
            "event": "skip" if choice == "skip" else "label", "id": item.id, "left": left,
            "annotator": self.annotator, "seconds": _clean_seconds(seconds),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if choice != "skip":
            right = "B" if left == "A" else "A"
            label = {"left": left, "right": right, "tie": "tie"}[choice]
            record.update(chosen=choice, label=label, task=item.task, prompt=item.prompt,
                          image_a=self._path(item.image_a), image_b=self._path(item.image_b),
                          source=self._path(item.source) if item.source else None)
        self._append(record)
        return record

    def undo(self) -> str | None:
        """Withdraw the most recent answer; returns its pair id (None when there is none)."""
        if not self.state.history:
            return None
        pair_id = self.state.history[-1]
        self._append({"event": "undo", "id": pair_id, "annotator": self.annotator,
                      "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return pair_id

    def _append(self, record: dict[str, Any]) -> None:
        self.writer.write(record)  # fsynced: the log is the record of truth
        self.state.apply(record)
        self.write_seeds()

    def write_seeds(self) -> None:
        """Rewrite the seed file from the replay, atomically (tmp file, fsync, rename)."""
        lines = []
        for pair_id in self.state.history:
            record = self.state.answers[pair_id]
            if record.get("event") != "label" or record.get("label") not in ("A", "B"):
                continue
            seed = {key: record.get(key) for key in ("id", "task", "prompt", "image_a", "image_b")}
            if record.get("source"):
                seed["source"] = record["source"]
            seed.update(label=record["label"], annotator=record.get("annotator", ""), left=record.get("left"))
            lines.append(encode_line(seed))  # a path that is not UTF-8 (surrogateescape) stays \u-escaped
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.out)
        _fsync_dir(self.out.parent)

    def _path(self, ref: ImageRef) -> str:
        """An absolute path for the seed file; embedded images are written once beside it."""
        if ref.data is None:
            return str(Path(str(ref.path)).resolve())
        name = hashlib.sha256(ref.data).hexdigest()[:24]
        self.images_dir.mkdir(parents=True, exist_ok=True)
        path = self.images_dir / f"{name}{image_suffix(ref.data)}"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(ref.data)
            tmp.replace(path)
        return str(path.resolve())

    def close(self) -> None:
        self.writer.close()
        self._lock.close()  # releases the lock


def image_suffix(data: bytes) -> str:
    """The file extension of encoded image bytes, told by their signature (``.img`` when unknown),
    so an image written out of a dataset opens in any viewer."""
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    return ".img"


def _lock_log(log_path: Path):
    """Hold the label log's lock for this book's life, or raise :class:`LabelInputError`."""
    handle = exclusive_lock(log_path)
    if handle is None:
        raise LabelInputError(
            f"another arrpo label is already writing to {log_path}; stop it first, or give this one "
            "another --out or --annotator"
        )
    return handle


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _clean_seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative: the client's clock is not trusted
        return None
    return round(min(seconds, MAX_SECONDS), 3)
