"""What ``arrpo review`` reads and writes: an ``arrpo eval`` run (read-only) and a guide file.

Per pair and judge the review shows both orders' answers in A/B terms (with OCR evidence: whose
winner each is, and what the evidence alone says), what was read beside each image and the
requested text (:meth:`arrpo.eval.rundir.PairEvidence.display`), and three flags:

* ``invalid``: an order's answer is invalid (unparseable, refusal, backend or image error);
* ``orders_disagree``: both orders answered validly and named different winners;
* ``disagrees``: the judge answered validly at least once and no valid answer matches the human label.

Marked exemplars are appended (one fsynced line each) to a guide file in the format
:func:`arrpo.rubrics.guide.read_guide` reads — ``prompt``, ``preferred``, ``dispreferred``,
``rationale`` and ``source`` for edits, with absolute image paths — plus ``id``, ``run`` and
``task`` for the record. A pair is marked at most once; restarting shows the pairs already marked.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrpo.annotate.locks import exclusive_lock
from arrpo.datasets.pairs import ImageRef
from arrpo.errors import ArrpoError
from arrpo.eval.rundir import EvalRecord, OrderOutcome, RunDir
from arrpo.jsonl import JsonlWriter, latest_by_id
from arrpo.text import clip, valid_utf8

SLOTS = ("a", "b", "source")
MAX_RATIONALE = 2000
#: Longest text (a reason, a raw answer) the review page shows of one field.
MAX_SHOWN_CHARS = 20_000
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_rationale(text: str) -> str:
    """A rationale as it is stored: valid UTF-8 (a lone surrogate becomes U+FFFD, so
    ``arrpo rubric learn --guide`` can read it), no control characters, spaces collapsed."""
    return " ".join(_CONTROL.sub(" ", valid_utf8(text)).split())
_THUMB = re.compile(r"^[0-9a-f]{8,64}\.jpg$")


class ReviewInputError(ArrpoError, ValueError, kind="bad_input"):
    """The run directory or the exemplar file cannot be used; the message says why."""


class ExemplarError(ArrpoError, ValueError, kind="bad_input"):
    """A pair cannot be marked (already marked, tie, no original images, bad rationale)."""


def order_view(outcome: OrderOutcome) -> dict[str, Any]:
    """The fields of one order's outcome the page shows (valid UTF-8, long texts cut); with OCR
    evidence also ``decided_by`` and ``decision`` (whose winner it is, in words)."""
    view = safe_text(outcome.model_dump(include={"shown_first", "winner", "correct", "reason", "invalid_reason"}))
    if outcome.decided_by is not None:
        view.update(decided_by=outcome.decided_by, decision=outcome.decision_note())
    return view


def flags(record: EvalRecord, label: str | None) -> dict[str, bool]:
    """``invalid``, ``orders_disagree`` and ``disagrees`` of one verdict record (see the module doc)."""
    winners = [o.winner for o in record.outcomes]
    valid = [w for w in winners if w in ("A", "B", "tie")]
    return {
        "invalid": record.invalid or bool(record.error),
        "orders_disagree": len(valid) == 2 and valid[0] != valid[1],
        "disagrees": bool(valid) and all(w != label for w in valid),
    }


def safe_text(value: Any, limit: int = MAX_SHOWN_CHARS, depth: int = 0) -> Any:
    """``value`` with every string made valid UTF-8 (U+FFFD for lone surrogates, which an older or
    edited run file may hold and no JSON response can encode) and cut to ``limit`` characters."""
    if isinstance(value, str):
        return clip(valid_utf8(value), limit)
    if depth > 32:
        return None
    if isinstance(value, dict):
        return {safe_text(k, limit, depth + 1): safe_text(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [safe_text(v, limit, depth + 1) for v in value]
    return value


@dataclass
class RunView:
    """An eval run directory, read once: the pairs, the judges and their latest verdicts."""

    run_dir: Path
    pairs: list[dict[str, Any]]
    judges: list[str]
    verdicts: dict[str, dict[str, EvalRecord]]
    info: dict[str, Any] = field(default_factory=dict)
    image_roots: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: str | Path, *, images: str | Path | None = None) -> RunView:
        """Read ``run_dir`` (raises :class:`ReviewInputError` when it is not an eval run)."""
        run = RunDir(Path(run_dir).expanduser())
        run_dir = run.root
        if not run_dir.is_dir():
            raise ReviewInputError(f"{run_dir}: no such run directory")
        if not run.manifest.is_file() or not run.verdict_dir.is_dir():
            raise ReviewInputError(f"{run_dir}: not an arrpo eval run directory (expected pairs.jsonl and verdicts/)")
        pairs = [safe_text(p) for p in run.pairs() if isinstance(p.get("id"), str)]
        if not pairs:
            raise ReviewInputError(f"{run.manifest}: holds no pairs")
        judges = run.judges_on_disk()
        verdicts = {name: {safe_text(key): record for key, record in run.records(name).items()} for name in judges}
        info = run.info() or {}
        roots = [Path(images).expanduser()] if images is not None else []
        if isinstance(info, dict):
            if info.get("images"):
                roots.append(Path(str(info["images"])))
            spec = str(info.get("dataset") or "")
            if ":" in spec:
                data_path = Path(spec.partition(":")[2])
                roots.append(data_path if data_path.is_dir() else data_path.parent)
        return cls(run_dir=run_dir, pairs=pairs, judges=judges, verdicts=verdicts,
                   info=info if isinstance(info, dict) else {}, image_roots=roots)

    def original(self, number: int, slot: str) -> Path | None:
        """The original image file of a pair's slot, when it can be found."""
        name = self.pairs[number].get("image_a" if slot == "a" else "image_b" if slot == "b" else "source")
        if not isinstance(name, str) or not name or name.startswith("<"):
            return None  # absent, or embedded bytes that the run does not copy
        path = Path(name)
        candidates = [path] if path.is_absolute() else [path, *(root / path for root in self.image_roots)]
        return next((c.resolve() for c in candidates if c.is_file()), None)

    def thumbnail(self, number: int, slot: str) -> Path | None:
        """The run's thumbnail of a pair's slot (named by content hash inside ``thumbs/``)."""
        pair_id = self.pairs[number]["id"]
        for judge in self.judges:
            record = self.verdicts[judge].get(pair_id)
            name = record.thumbs.get(slot) if record is not None else None
            if isinstance(name, str) and _THUMB.match(name):
                path = RunDir(self.run_dir).thumbs / name
                if path.is_file():
                    return path
        return None

    def image(self, number: int, slot: str) -> ImageRef | None:
        """What to show for a slot: the original file, else the thumbnail, else nothing."""
        if slot not in SLOTS or not 0 <= number < len(self.pairs):
            return None
        path = self.original(number, slot) or self.thumbnail(number, slot)
        return ImageRef(path=str(path)) if path else None

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-able row per pair: prompt, label, and per judge both orders and the flags."""
        rows = []
        for number, pair in enumerate(self.pairs):
            label = pair.get("label")
            per_judge = {}
            for judge in self.judges:
                record = self.verdicts[judge].get(pair["id"])
                if record is None:
                    continue
                per_judge[judge] = {"forward": order_view(record.forward), "reverse": order_view(record.reverse),
                                    "error": safe_text(record.error), "flags": flags(record, label)}
                if record.evidence is not None:
                    per_judge[judge]["evidence"] = record.evidence.display()
            shown = next((j["evidence"] for j in per_judge.values() if j.get("evidence", {}).get("reads")), None)
            rows.append({"n": number, "id": pair["id"], "task": pair.get("task", "t2i"),
                         "prompt": pair.get("prompt", ""), "label": label, "subset": pair.get("subset"),
                         "has_source": bool(pair.get("source")), "judges": per_judge, "evidence": shown})
        return rows


class ExemplarBook:
    """The guide file being written: append-only, one exemplar per marked pair."""

    def __init__(self, path: str | Path, view: RunView):
        self.path = Path(path).expanduser()
        self.view = view
        run = view.run_dir.resolve()
        if self.path.resolve() == run or run in self.path.resolve().parents:
            raise ReviewInputError(f"{self.path}: write the exemplars outside the run directory (it is only read)")
        if self.path.exists() and not self.path.is_file():
            raise ReviewInputError(f"{self.path}: not a file")
        self._lock = exclusive_lock(self.path)
        if self._lock is None:
            raise ReviewInputError(f"another arrpo review is already writing to {self.path}; stop it first or "
                                   "give this one another --out")
        self.marked: dict[str, dict[str, Any]] = latest_by_id(self.path)
        self.writer = JsonlWriter(self.path)

    def mark(self, number: int, preferred: str, rationale: object) -> dict[str, Any]:
        """Append pair ``number`` as an exemplar with ``preferred`` (``A``/``B``) and the rationale."""
        if not 0 <= number < len(self.view.pairs):
            raise ExemplarError("no such pair")
        pair = self.view.pairs[number]
        if pair["id"] in self.marked:
            raise ExemplarError(f"pair {pair['id']!r} is already an exemplar in {self.path}")
        if preferred not in ("A", "B"):
            raise ExemplarError("an exemplar needs a preferred image: A or B")
        if not str(pair.get("prompt") or "").strip():
            raise ExemplarError(f"pair {pair['id']!r} has no prompt; a guide exemplar needs one")
        if not isinstance(rationale, str):
            raise ExemplarError("the rationale must be text")
        text = clean_rationale(rationale)
        if len(text) < 3 or len(text) > MAX_RATIONALE:
            raise ExemplarError(f"the rationale must be 3 to {MAX_RATIONALE} characters")
        files = {slot: self.view.original(number, slot) for slot in SLOTS}
        needed = ("a", "b", "source") if pair.get("source") else ("a", "b")
        missing = [slot for slot in needed if files[slot] is None]
        if missing:
            raise ExemplarError(
                f"the original image files of pair {pair['id']!r} ({', '.join(missing)}) are not available "
                "(embedded in the dataset, or moved); pass --images ROOT if they moved"
            )
        other = "B" if preferred == "A" else "A"
        record: dict[str, Any] = {
            "id": pair["id"], "task": pair.get("task", "t2i"), "prompt": pair.get("prompt", ""),
            "preferred": str(files[preferred.lower()]), "dispreferred": str(files[other.lower()]),
            "rationale": text, "human_label": pair.get("label"), "run": str(self.view.run_dir.resolve()),
            "marked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if files["source"] is not None:
            record["source"] = str(files["source"])
        self.writer.write(record)
        self.marked[pair["id"]] = record
        return record

    def close(self) -> None:
        self.writer.close()
        self._lock.close()
