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
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from arrpo.datasets.pairs import Label
from arrpo.evidence.values import EvidenceDecision, OcrEvidence, PolicyOutcome, VerdictEvidence
from arrpo.jsonl import iter_records, latest_by_id
from arrpo.schema import Winner
from arrpo.text import clip, valid_utf8
from arrpo.vocab import Task

DecidedBy = Literal["vlm", "evidence"]
Side = Literal["forward", "reverse"]
SIDES: tuple[Side, ...] = ("forward", "reverse")
#: The report files :func:`arrpo.eval.report.write_report` writes, in the order it writes them.
REPORT_FILES = ("accuracy_by_subset.svg", "forward_reverse.svg", "metrics.json", "summary.md", "report.html")
#: Marks a verdict file set aside by the changed-settings rule (:mod:`arrpo.jobs`).
STALE_MARK = ".stale-"
#: Characters of an evidence note (why evidence was unavailable, a policy's note) a page shows.
SHOWN_NOTE_CHARS = 240


def shown_text(text: str, limit: int = SHOWN_NOTE_CHARS) -> str:
    """A note for a page: valid UTF-8, control characters as spaces, at most ``limit`` characters."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in valid_utf8(text))
    return clip(" ".join(cleaned.split()), limit)


class OrderOutcome(BaseModel):
    """One order's answer for a pair, in the dataset's A/B terms.

    ``attempts`` counts the answers asked for (parse re-asks included), ``cached`` those of them
    the response cache answered; ``calls`` the requests actually sent to the model for them: HTTP
    retries included, cache hits excluded.

    Only for a judge with OCR evidence (absent from the file otherwise): ``decided_by`` says whose
    winner ``winner`` is — ``evidence`` for the evidence-only judge and for an order whose winner
    ``ocr_policy`` took from decisive evidence, else ``vlm``; ``policy`` is the policy's outcome for a
    judge that asked a model (``policy.vlm_winner`` is what the model said; ``None`` when the
    prompt asks for no text or the evidence could not be read).
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
    decided_by: DecidedBy | None = None
    policy: PolicyOutcome | None = None

    def decision_note(self) -> str | None:
        """Whose winner this order's is, in words for reports (``None``: a judge without evidence)."""
        if self.decided_by is None:
            return None
        policy = self.policy
        if policy is None:
            return ("decided by the OCR evidence alone" if self.decided_by == "evidence"
                    else "decided by the model (no OCR evidence for this pair)")
        who = "the OCR evidence" if policy.decided_by == "evidence" else "the model"
        note = policy.note.replace("VLM said", "the model said")
        said = "" if note.startswith("the model said") else f"the model said {policy.vlm_winner}; "
        return shown_text(f"decided by {who} (ocr_policy {policy.policy}: {said}{note})")


#: Fields written only when set (a judge without evidence writes the records it always wrote).
EVIDENCE_ORDER_FIELDS = ("decided_by", "policy")


class PairEvidence(BaseModel):
    """The tool evidence a judge had for one pair, kept once per pair (both orders used it).

    ``ocr`` is what was asked, what was read in each image (``a``, ``b``, an edit's ``source``) and
    the match (``None``: the prompt asks for no text, or gathering failed); ``unavailable`` says why
    the evidence could not be used; ``decision`` is what the evidence alone says
    (:func:`arrpo.evidence.decide_pair`). What each order did with it is in its
    :class:`OrderOutcome`.
    """

    ocr: OcrEvidence | None = None
    unavailable: str | None = None
    decision: EvidenceDecision | None = None

    @classmethod
    def of(cls, evidence: VerdictEvidence) -> PairEvidence:
        """The pair's part of what the judge gathered (its policy outcome is per order)."""
        return cls(ocr=evidence.ocr, unavailable=evidence.unavailable, decision=evidence.decision)

    @property
    def asks_for_text(self) -> bool:
        """Whether the prompt asks for text (an unreadable image still asked)."""
        return self.ocr is not None or self.unavailable is not None

    def display(self) -> dict[str, Any]:
        """What a report or review page shows of the evidence: ``requested`` (one line), ``reads``
        (one line per image, ``A``, ``B`` and ``source``: :func:`arrpo.evidence.reads_for_display`)
        and ``decision`` (what the evidence alone says, or why there is none). Plain text: text read
        from an image is quoted, stripped of control characters and clipped; pages still escape it."""
        from arrpo.evidence.block import reads_for_display, requested_for_display

        decision = self.decision
        if self.unavailable is not None:
            said = self.unavailable
        elif decision is None:
            said = "no OCR evidence"
        elif decision.winner == "invalid":
            said = decision.invalid_reason or "no OCR evidence"
        else:
            said = f"evidence alone: {decision.winner} ({decision.reason})"
        return {"requested": requested_for_display(self.ocr), "reads": reads_for_display(self.ocr),
                "decision": shown_text(said)}


class EvalRecord(BaseModel):
    """One line of ``verdicts/<judge>.jsonl``: a judge's answers on one pair, both orders.

    ``error`` says why the pair could not be judged (an image, its rubric, an exception); both
    orders are then ``invalid``. ``thumbs`` maps ``a``/``b``/``source`` to thumbnail names.
    ``evidence`` is the pair's :class:`PairEvidence`, only for a judge with OCR evidence (absent
    from the file otherwise, and for two identical images, which are a tie without reading).
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
    evidence: PairEvidence | None = None

    @property
    def outcomes(self) -> tuple[OrderOutcome, OrderOutcome]:
        return self.forward, self.reverse

    @property
    def invalid(self) -> bool:
        """Whether an order's answer is invalid."""
        return any(o.winner == "invalid" for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        """The line as written: ``error``, ``evidence`` and the orders' evidence fields only when
        set, so a judge without evidence writes exactly the fields it always wrote."""
        line = self.model_dump(mode="json")
        for key in ("error", "evidence"):
            if line[key] is None:
                del line[key]
        for side in SIDES:
            for key in EVIDENCE_ORDER_FIELDS:
                if line[side][key] is None:
                    del line[side][key]
        return line

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
