"""The typed values of OCR evidence: what was asked, what was read, how well it matches.

All are pydantic models that serialise to JSON (``model_dump(mode="json")``), so a verdict or
an eval record can keep them as they are. Every string in them is valid UTF-8 and bounded.

This module imports only :mod:`arrpo.vocab` and :mod:`arrpo.text`: it is a room of its own on a
low floor (``tests/core/test_architecture.py``), so :class:`arrpo.schema.Verdict` can carry a
:class:`VerdictEvidence` while the rest of :mod:`arrpo.evidence` builds on the schema.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arrpo.text import valid_utf8
from arrpo.vocab import OcrPolicy, Task, Winner


def _utf8(value: str) -> str:
    return valid_utf8(value)


class RequestedText(BaseModel):
    """The text a prompt or edit instruction asks the image to show.

    ``strings`` are the texts the image should show (for an edit: the new text), in prompt
    order, without duplicates. ``old`` holds, for an edit such as "replace X with Y", the text
    being replaced (X); it is reported, never required. ``truncated`` says the prompt was longer
    than what is scanned, or asked for more strings than are kept.
    """

    model_config = ConfigDict(frozen=True)

    strings: tuple[str, ...] = ()
    old: tuple[str, ...] = ()
    truncated: bool = False

    @property
    def asks_for_text(self) -> bool:
        """True when the prompt asks for some text (otherwise no OCR runs and no block is shown)."""
        return bool(self.strings)


class OcrLine(BaseModel):
    """One line (text box) the OCR model read, in the image's own pixel coordinates."""

    text: str
    confidence: float = Field(ge=0.0, le=1.0)
    box: tuple[int, int, int, int] | None = Field(
        None, description="Axis-aligned bounds (left, top, right, bottom) of the detected box."
    )

    @field_validator("text")
    @classmethod
    def _valid_utf8(cls, value: str) -> str:
        return _utf8(value)


class OcrRead(BaseModel):
    """What the OCR model read in one image, or why nothing could be read.

    ``lines`` are in reading order (top to bottom, left to right). An image with no text has no
    lines and ``unavailable=None``: that is evidence (nothing legible). ``unavailable`` set means
    the reading failed (corrupt image, engine error): no evidence about this image.
    """

    image_sha256: str
    lines: list[OcrLine] = Field(default_factory=list)
    unavailable: str | None = None
    engine: str = ""
    latency_ms: float = 0.0
    cached: bool = False

    @field_validator("unavailable")
    @classmethod
    def _valid_utf8(cls, value: str | None) -> str | None:
        return None if value is None else _utf8(value)

    @property
    def ok(self) -> bool:
        return self.unavailable is None

    @property
    def text(self) -> str:
        """All lines joined with single spaces."""
        return " ".join(line.text for line in self.lines)


class StringMatch(BaseModel):
    """How well one requested string is matched by the text read in an image.

    ``distance`` is the fewest character edits (insert, delete, substitute) that turn the
    requested string into some contiguous part of the read text, both normalised (see
    :mod:`arrpo.evidence.matching`); ``score = 1 - min(1, distance / length)``; ``matched`` is
    that part of the read text (normalised). Words are whitespace-separated words of the
    request, and each CJK character counts as a word.
    """

    requested: str
    length: int = Field(description="Characters of the requested string after normalisation.")
    distance: int
    score: float = Field(ge=0.0, le=1.0)
    matched: str = ""
    words_total: int = 0
    words_found: int = 0
    missing_words: list[str] = Field(default_factory=list)


class CandidateMatch(BaseModel):
    """An image's match to all requested strings.

    ``score`` pools the strings: ``1 - sum(min(distance, length)) / sum(length)``, i.e. one
    minus the edits per requested character. ``old_score`` (edits that name the text they
    replace) is the same measure for the old text: 1.0 means the old text is still fully read.
    """

    score: float = Field(ge=0.0, le=1.0)
    strings: list[StringMatch]
    old_score: float | None = Field(None, ge=0.0, le=1.0)

    @property
    def words_found(self) -> int:
        return sum(s.words_found for s in self.strings)

    @property
    def words_total(self) -> int:
        return sum(s.words_total for s in self.strings)


class CandidateEvidence(BaseModel):
    """One candidate image: what was read and (when it was read) how well it matches."""

    read: OcrRead
    match: CandidateMatch | None = None


class OcrEvidence(BaseModel):
    """The OCR evidence of one comparison: what was asked, what each image shows, the match.

    ``a`` and ``b`` are the candidates as the comparison names them (never the shown order);
    ``source`` is the edit's source image. ``unavailable`` is set when either candidate could not
    be read: the evidence then decides nothing.
    """

    tool: Literal["ocr"] = "ocr"
    task: Task = "t2i"
    requested: RequestedText
    a: CandidateEvidence
    b: CandidateEvidence
    source: OcrRead | None = None
    unavailable: str | None = None

    def swapped(self) -> OcrEvidence:
        """The same evidence with A and B exchanged (for a swapped comparison)."""
        return self.model_copy(update={"a": self.b, "b": self.a})


class EvidenceDecision(BaseModel):
    """What the evidence alone says about a pair.

    ``winner`` is ``A``/``B`` when one candidate's score is higher, ``tie`` when they are equal,
    ``invalid`` when there is no evidence (``invalid_reason`` says why: the prompt asks for no
    text, or an image could not be read). ``decisive`` is True when the winner leads by at least
    the decisive margin and its own score reaches the minimum score (see
    :func:`arrpo.evidence.decide.decide_pair`): only decisive evidence may change a VLM's winner.
    """

    winner: Winner
    score_a: float | None = None
    score_b: float | None = None
    margin: float = Field(0.0, description="score_a - score_b (0 when there is no evidence).")
    decisive: bool = False
    reason: str = ""
    invalid_reason: str | None = None


class PolicyOutcome(BaseModel):
    """The winner after an ``ocr_policy`` combined a VLM verdict with the evidence."""

    policy: OcrPolicy
    winner: Winner
    vlm_winner: Winner
    decided_by: Literal["vlm", "evidence"]
    note: str = ""

    @property
    def changed(self) -> bool:
        """True when the evidence replaced the VLM's winner."""
        return self.winner != self.vlm_winner


class SampleScore(BaseModel):
    """A per-sample OCR score for hosts that combine rewards per sample.

    ``score`` is the candidate's match score (1 − normalised edit distance, pooled over the
    requested strings), or ``None`` — no signal — when the prompt asks for no text or the image
    could not be read (``reason`` says which). A host must treat ``None`` as masked, never as 0.
    """

    score: float | None
    requested: RequestedText
    read: OcrRead | None = None
    match: CandidateMatch | None = None
    reason: str | None = None


class VerdictEvidence(BaseModel):
    """What a verdict keeps of the evidence it was judged with, and what the evidence did.

    ``ocr`` is the OCR evidence, or ``None`` when no OCR ran: the prompt asks for no text (then
    ``unavailable`` is ``None`` too), or gathering it failed. ``unavailable`` says why the evidence
    could not be used ("OCR evidence unavailable: …": an image could not be read, the engine
    failed); the judging went on without it. ``decision`` is what the evidence alone says
    (:func:`arrpo.evidence.decide.decide_pair`). ``policy`` is how ``ocr_policy`` combined it with
    the VLM's winner (``None`` when no VLM was asked or there was no OCR evidence);
    ``decided_by`` says whose winner the verdict carries.
    """

    ocr: OcrEvidence | None = None
    unavailable: str | None = None
    decision: EvidenceDecision | None = None
    policy: PolicyOutcome | None = None
    decided_by: Literal["vlm", "evidence"] = "vlm"

    @field_validator("unavailable")
    @classmethod
    def _valid_utf8(cls, value: str | None) -> str | None:
        return None if value is None else _utf8(value)
