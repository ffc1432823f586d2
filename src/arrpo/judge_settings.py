"""How a judge is configured: one model for every place a judge is set up.

:class:`JudgeSettings` is what :class:`arrpo.judge.PairwiseJudge` is built from. The same fields,
spelled the same, are read from a judge of an ``arrpo eval`` judges YAML, the RPO config's
``judge:`` section, the reward service's :class:`~arrpo.server.config.ServiceConfig`, and cross to
a Ray worker as this model's JSON. Each consumer takes the fields from this class (by extending it
or holding it), never from a list of its own, so a field added here reaches all of them:

* a field about **how one order is asked and its answer read** (a prompt layout, evidence shown
  beside the images, sampling) goes in :class:`AskSettings`; evaluation, which asks every pair in
  both orders itself, takes exactly these;
* a field about **which orders are asked and how their answers combine** goes in
  :class:`JudgeSettings`.

Numbers and switches are strict (``true`` is not a count, ``"100"`` not a number). Every field
carries its ``description``: ``docs/judging.md`` shows them in one table, which a test
compares with the fields here. Values are checked once, here; a bad or unknown one is a pydantic
``ValidationError`` (:func:`arrpo.errors.describe_validation_error` words it on one line).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arrpo.text import DEFAULT_MAX_ANSWER_CHARS
from arrpo.vocab import DisagreePolicy, EvidenceKind, OcrPolicy, OrderPolicy, PromptLayout

_Settings = TypeVar("_Settings", bound="AskSettings")


class AskSettings(BaseModel):
    """How the judge asks for one order's answer and reads it (what ``PairwiseJudge.ask`` uses)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_ties: bool = Field(False, strict=True, description="Let the model answer a tie (the paper forbids ties; so does the default).")
    parse_retries: int = Field(
        1, ge=0, strict=True, description="How many times to ask again, quoting the problem, after an unusable answer."
    )
    temperature: float = Field(
        0.0, ge=0, allow_inf_nan=False, strict=True, description="Sampling temperature of the judge's requests (the paper: 0, greedy)."
    )
    max_tokens: int = Field(1024, ge=1, strict=True, description="Longest answer the model may write, in tokens.")
    max_answer_chars: int | None = Field(
        DEFAULT_MAX_ANSWER_CHARS, ge=1, strict=True,
        description="Most characters of an answer a verdict keeps (raw: its beginning and end; reason: its "
        "beginning; each with a marker saying how much was cut); null keeps everything.",
    )
    prompt_layout: PromptLayout = Field(
        "authors",
        description="How a request is laid out: authors (the paper's: labelled images first, instructions and "
        "rubric last, one user message) or cached (instructions and rubric as a system message first, then the "
        "prompt, the source image and the candidates, so a server's prefix cache serves the shared part).",
    )
    evidence: tuple[EvidenceKind, ...] = Field(
        (),
        description="Tool evidence gathered for each pair: [ocr] reads the text the prompt asks for in each image "
        "(the ocr extra) and shows what was read to the model in an OCR evidence block.",
    )
    evidence_only: bool = Field(
        False, strict=True,
        description="Decide each pair from the evidence alone, asking no model (equal matches: tie; a prompt that "
        "asks for no text: invalid). Needs evidence.",
    )
    # an ask setting although tiebreak also settles two orders that disagree: an eval judge, which asks
    # each order on its own, must be able to measure every policy (there it applies per order)
    ocr_policy: OcrPolicy = Field(
        "evidence",
        description="What decisive OCR evidence does to the model's winner: evidence (shown to the model only), "
        "tiebreak (settles a tie or two orders that disagree), override (replaces the winner). Needs evidence.",
    )

    @field_validator("evidence")
    @classmethod
    def _each_kind_once(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(kinds))

    @model_validator(mode="after")
    def _evidence_settings_need_evidence(self) -> AskSettings:
        if self.evidence_only and not self.evidence:
            raise ValueError("evidence_only needs evidence to decide from: add evidence: [ocr]")
        if self.ocr_policy != "evidence" and "ocr" not in self.evidence:
            raise ValueError(f"ocr_policy {self.ocr_policy} needs OCR evidence: add evidence: [ocr]")
        return self

    @property
    def asks_model(self) -> bool:
        """Whether a judge with these settings asks a model. ``False`` for the evidence-only judge,
        which opens no backend and so needs no endpoint, model or local weights."""
        return not self.evidence_only

    @classmethod
    def of(cls: type[_Settings], source: BaseModel | None = None, /, **changes: Any) -> _Settings:
        """These settings as ``source`` holds them, with ``changes`` on top, checked.

        ``source`` is any model with some of these fields (a config section that extends this
        class, other settings); fields it lacks take their defaults. An unknown name in
        ``changes`` is refused like an unknown key in a file.
        """
        values = {} if source is None else {
            name: getattr(source, name) for name in cls.model_fields if name in type(source).model_fields
        }
        return cls.model_validate({**values, **changes})


class JudgeSettings(AskSettings):
    """Everything a :class:`~arrpo.judge.PairwiseJudge` is configured with: how each order is asked
    (:class:`AskSettings`) and which orders are asked."""

    order: OrderPolicy = Field(
        "random",
        description="Which orders are asked: given (A shown as Image 1), random (a fair coin seeded by the "
        "comparison's content and seed), both (A|B and B|A; position-bias control).",
    )
    on_disagree: DisagreePolicy = Field(
        "tie", description="With order both, what two orders that disagree give: tie, invalid, or first (the A|B answer)."
    )
    seed: int = Field(0, strict=True, description="Salt of the random order's coin (reruns with one seed ask the same orders).")


def settings_table() -> str:
    """Every field of :class:`JudgeSettings` as the Markdown table ``docs/judging.md`` shows: name,
    default, whether an ``arrpo eval`` judge takes it (the :class:`AskSettings` ones), meaning."""
    rows = ["| setting | default | in eval judges | meaning |", "|---|---|---|---|"]
    for name, field in JudgeSettings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")  # a bare | would end the cell
        in_eval = "yes" if name in AskSettings.model_fields else "no"
        rows.append(f"| `{name}` | {_yaml_word(field.default)} | {in_eval} | {meaning} |")
    return "\n".join(rows)


def _yaml_word(value: Any) -> str:
    """A default as a YAML file spells it (``null``, ``false``, ``16000``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return f"[{', '.join(map(str, value))}]"
    return str(value)
