"""The small typed values that flow between arrpo's modules: comparisons in, verdicts out.

The words they use (task, winner, order, policies) are defined once in :mod:`arrpo.vocab`.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arrpo.evidence.values import PolicyOutcome, VerdictEvidence
from arrpo.images import ImageData
from arrpo.rubric import Rubric
from arrpo.text import exception_text, valid_utf8
from arrpo.vocab import Order, PromptLayout, Task, Winner

#: How the reason of a verdict or answer that failed with an exception begins.
FAILED_PREFIX = "judge failed on this pair: "

__all__ = ["FAILED_PREFIX", "Comparison", "Order", "OrderAnswer", "Task", "Usage", "Verdict", "Winner",
           "task_for", "task_source_problem"]



class Usage(BaseModel):
    """Token usage of one or more model calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _utf8_or_none(value: str | None) -> str | None:
    """Text from models and input files is kept as valid UTF-8 (see
    :func:`arrpo.text.valid_utf8`), so every writer (JSONL, terminal, HTTP) can encode it."""
    return None if value is None else valid_utf8(value)


def task_for(task: Task | None, source: object | None) -> Task:
    """The task of a pair: the one given, else ``edit`` when it has a source image, ``t2i`` otherwise."""
    return task or ("edit" if source else "t2i")


def task_source_problem(task: Task, has_source: bool) -> str | None:
    """Why ``task`` and having a source image (or not) do not go together, or ``None``: the one
    rule every reader of pairs and requests applies, and :class:`Comparison` enforces."""
    if task == "edit" and not has_source:
        return "task 'edit' needs a source image"
    if task == "t2i" and has_source:
        return "task 't2i' takes no source image (use task 'edit')"
    return None


class Comparison(BaseModel):
    """Two candidate images for one prompt (and a source image for edits), to be judged.

    ``rubric=None`` asks the direct judge (the paper's rubric-free baseline).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    task: Task = "t2i"
    prompt: str = Field(description="T2I prompt or editing instruction.")
    image_a: ImageData
    image_b: ImageData
    source: ImageData | None = Field(None, description="Source image; required for edits.")
    rubric: Rubric | None = None
    id: str | None = Field(None, description="Caller's identifier, copied to the verdict.")

    @field_validator("prompt", "id")
    @classmethod
    def _valid_utf8(cls, value: str | None) -> str | None:
        return _utf8_or_none(value)

    @model_validator(mode="after")
    def _check_task(self) -> Comparison:
        problem = task_source_problem(self.task, self.source is not None)
        if problem is not None:
            raise ValueError(problem)
        return self

    def key(self) -> str:
        """Stable content hash: same prompt, images, source and rubric give the same key."""
        h = hashlib.sha256()
        for part in (
            self.task,
            self.prompt,
            self.image_a.sha256,
            self.image_b.sha256,
            self.source.sha256 if self.source else "",
            self.rubric.render() if self.rubric else "",
        ):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()

    def swapped(self) -> Comparison:
        """The same comparison with A and B exchanged."""
        return self.model_copy(update={"image_a": self.image_b, "image_b": self.image_a})


class OrderAnswer(BaseModel):
    """What the model said when shown the pair in one order."""

    order: Order = Field(description="'AB': A shown as Image 1; 'BA': B shown as Image 1.")
    winner: Winner = Field(description="Winner mapped back to A/B ('invalid' if unusable).")
    raw: str | None = Field(None, description="The model's raw text (last attempt).")
    reason: str | None = None
    invalid_reason: str | None = None
    backend_failed: bool = Field(
        False, description="The backend failed (after retries): no model judgement, worth asking again later."
    )
    latency_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    attempts: int = Field(1, description="Answers asked for (the first ask and parse re-asks).")
    cached: int = Field(0, description="How many of those answers came from the response cache (no model call).")
    policy: PolicyOutcome | None = Field(
        None, description="With OCR evidence: how ocr_policy combined it with this order's answer "
        "(policy.vlm_winner is what the model said; winner is the outcome)."
    )

    @field_validator("raw", "reason", "invalid_reason")
    @classmethod
    def _valid_utf8(cls, value: str | None) -> str | None:
        return _utf8_or_none(value)


class Verdict(BaseModel):
    """The judge's decision on a comparison.

    ``winner`` is ``A``, ``B``, ``tie`` (only from order disagreement, when ties are allowed, or
    for two byte-identical images) or ``invalid`` (the model's answers could not be used; ``invalid_reason`` says why).
    ``prompt_layout`` is the layout the model was asked in and ``evidence`` what the judge's tool
    evidence was and did (both ``None`` where they do not apply: see their descriptions).
    """

    id: str | None = None
    winner: Winner
    reason: str | None = None
    answers: list[OrderAnswer] = Field(default_factory=list)
    orders_agree: bool | None = Field(None, description="Set when both orders were asked.")
    invalid_reason: str | None = None
    latency_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    prompt_layout: PromptLayout | None = Field(
        None, description="The prompt layout the model was asked in (None: no model was asked, e.g. the "
        "evidence-only judge, identical images, a failure before asking)."
    )
    evidence: VerdictEvidence | None = Field(
        None, description="The tool evidence the pair was judged with and what it did (None: the judge "
        "uses no evidence)."
    )

    @field_validator("id", "reason", "invalid_reason")
    @classmethod
    def _valid_utf8(cls, value: str | None) -> str | None:
        return _utf8_or_none(value)

    @property
    def is_valid(self) -> bool:
        return self.winner in ("A", "B", "tie")

    @classmethod
    def failed(cls, cause: BaseException | str, *, id: str | None = None, latency_s: float = 0.0) -> Verdict:
        """The ``invalid`` verdict of a pair whose judging could not finish, worded the same
        everywhere: ``judge failed on this pair: Type: message`` for an exception, or the given
        reason (e.g. ``judge timed out after 60 s``)."""
        reason = cause if isinstance(cause, str) else f"{FAILED_PREFIX}{exception_text(cause)}"
        return cls(id=id, winner="invalid", invalid_reason=reason, latency_s=latency_s)
