"""The eval run directory and its per-pair record: one home for the layout and the record type.

An ``arrpo eval`` run (and a rubric validation, which is one) lives in a folder::

    run.json                 what was run (dataset, judges, settings)
    pairs.jsonl              the pairs (prompt, label, subset, image paths)
    verdicts/<judge>.jsonl   one :class:`EvalRecord` per judged pair, appended as it finishes
    verdicts/<judge>.stale-TIME.jsonl  records set aside when the judge's settings changed
    thumbs/                  small JPEGs of every judged image (named by content hash)
    rubrics/<judge>/         prompt-level rubrics, written once
    sessions.jsonl           one line per finished session (records written, wall time)
    metrics.json, summary.md, accuracy_by_subset.svg, forward_reverse.svg, report.html

:class:`RunDir` names these paths and reads them back; :class:`EvalRecord` (with one
:class:`OrderOutcome` per order) is what the runner writes and every reader (metrics, report,
``arrpo review``, the CLI) reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from arrpo.datasets.pairs import Label
from arrpo.jsonl import iter_records, latest_by_id
from arrpo.schema import Winner
from arrpo.vocab import Task

Side = Literal["forward", "reverse"]
SIDES: tuple[Side, ...] = ("forward", "reverse")
#: The report files :func:`arrpo.eval.report.write_report` writes, in the order it writes them.
REPORT_FILES = ("accuracy_by_subset.svg", "forward_reverse.svg", "metrics.json", "summary.md", "report.html")
#: Marks a verdict file set aside by the changed-settings rule (:mod:`arrpo.jobs`).
STALE_MARK = ".stale-"


class OrderOutcome(BaseModel):
    """One order's answer for a pair, in the dataset's A/B terms.

    ``attempts`` counts the answers asked for (parse re-asks included), ``cached`` those of them
    the response cache answered; ``calls`` the requests actually sent to the model for them: HTTP
    retries included, cache hits excluded.
    """

    shown_first: Literal["A", "B"]
    winner: Winner
    correct: bool
    reason: str | None = None
    raw: str | None = None
    invalid_reason: str | None = None
    latency_s: float = 0.0
    attempts: int = 0
    cached: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EvalRecord(BaseModel):
    """One line of ``verdicts/<judge>.jsonl``: a judge's answers on one pair, both orders.

    ``error`` says why the pair could not be judged (an image, its rubric, an exception); both
    orders are then ``invalid``. ``thumbs`` maps ``a``/``b``/``source`` to thumbnail names.
    """

    id: str
    judge: str
    subset: str = "all"
    label: Label
    task: Task = "t2i"
    thumbs: dict[str, str] = {}
    rubric_key: str | None = None
    error: str | None = None
    forward: OrderOutcome
    reverse: OrderOutcome
    wall_s: float = 0.0

    @property
    def outcomes(self) -> tuple[OrderOutcome, OrderOutcome]:
        return self.forward, self.reverse

    @property
    def invalid(self) -> bool:
        """Whether an order's answer is invalid."""
        return any(o.winner == "invalid" for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        """The line as written (``error`` only on records that have one)."""
        return self.model_dump(mode="json", exclude={"error"} if self.error is None else None)

    @classmethod
    def parse(cls, record: dict[str, Any]) -> EvalRecord | None:
        """A record read from a file, or ``None`` when the line is not a valid record (it then
        counts as not judged, like a torn line)."""
        try:
            return cls.model_validate(record)
        except ValidationError:
            return None


class RunDir:
    """The paths of an eval run directory, and typed reading of what is in it."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    # ------------------------------------------------------------------- paths
    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def manifest(self) -> Path:
        """``pairs.jsonl``: the pairs of the run."""
        return self.root / "pairs.jsonl"

    @property
    def verdict_dir(self) -> Path:
        return self.root / "verdicts"

    def verdicts(self, judge: str) -> Path:
        """``verdicts/<judge>.jsonl``."""
        return self.verdict_dir / f"{judge}.jsonl"

    @property
    def thumbs(self) -> Path:
        return self.root / "thumbs"

    def rubrics(self, judge: str) -> Path:
        """``rubrics/<judge>/``: the prompt-level rubrics of a judge."""
        return self.root / "rubrics" / judge

    @property
    def sessions(self) -> Path:
        return self.root / "sessions.jsonl"

    @property
    def metrics_json(self) -> Path:
        return self.root / "metrics.json"

    def report_file(self, name: str) -> Path:
        """One of :data:`REPORT_FILES`."""
        if name not in REPORT_FILES:
            raise ValueError(f"not a report file: {name!r} (one of {', '.join(REPORT_FILES)})")
        return self.root / name

    # ----------------------------------------------------------------- reading
    def info(self) -> dict[str, Any] | None:
        """``run.json`` (``None`` when missing or unreadable)."""
        try:
            info = json.loads(self.run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def pairs(self) -> list[dict[str, Any]]:
        """The pair manifest, in run order."""
        return list(iter_records(self.manifest))

    def judges_on_disk(self) -> list[str]:
        """Names of the judges with a verdict file (set-aside files left out), sorted."""
        return sorted(p.stem for p in self.verdict_dir.glob("*.jsonl") if STALE_MARK not in p.name)

    def records(self, judge: str) -> dict[str, EvalRecord]:
        """The newest valid record per pair id of a judge."""
        records = {}
        for pair_id, raw in latest_by_id(self.verdicts(judge)).items():
            record = EvalRecord.parse(raw)
            if record is not None:
                records[pair_id] = record
        return records
