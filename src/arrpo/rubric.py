"""Rubrics in Theme-Tips form: the explicit reward specification of ARR.

A :class:`Rubric` is a list of themes, each a short statement of one quality dimension with a few
operational tips. It renders deterministically to the text that conditions the judge, and
round-trips through JSON (the rendered text is stored beside the structure for people to read).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arrpo._version import __version__
from arrpo.vocab import Task

RubricScope = Literal["task", "prompt"]


class Theme(BaseModel):
    """One rubric dimension: a concise theme and its tips, with an optional weight."""

    model_config = ConfigDict(extra="forbid")

    theme: str = Field(min_length=1, description="Concise statement of the quality dimension.")
    tips: list[str] = Field(default_factory=list, description="Operational guidance for the dimension.")
    weight: float | None = Field(
        default=None, gt=0, description="Optional relative importance (the paper uses none)."
    )

    @field_validator("theme")
    @classmethod
    def _strip_theme(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("theme must not be blank")
        return value

    @field_validator("tips")
    @classmethod
    def _clean_tips(cls, value: list[str]) -> list[str]:
        return [tip.strip() for tip in value if tip and tip.strip()]


class Provenance(BaseModel):
    """Where a rubric came from, so a reward can be reproduced and audited.

    The fields of every method are declared (unset ones are not written); a hand-written rubric
    may add its own notes, which are kept as they are (``extra="allow"``).
    """

    model_config = ConfigDict(extra="allow")

    method: str = Field("manual", description="'manual', 'zero-shot', 'learned' or 'fallback'.")
    generator_model: str | None = None
    seed_file_sha256: str | None = None
    k: int | None = Field(None, description="Criteria generated per seed pair.")
    t_max: int | None = Field(None, description="Maximum refinement rounds per pair.")
    pairs: int | None = None
    passed_first: int | None = None
    refined: int | None = None
    dropped: int | None = None
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    arrpo_version: str = __version__
    # learned rubrics (arrpo rubric learn): what the run did and how the criteria were structured
    bad_input: int | None = Field(None, description="Seed pairs whose images could not be used.")
    seed_format: str | None = None
    verify_order: str | None = None
    order_disagreements: int | None = None
    failed_verifications: int | None = None
    guide_sha256: str | None = None
    criteria_pool: int | None = Field(None, description="Verified criteria pooled from all pairs.")
    criteria_structured: int | None = Field(None, description="Criteria given to the structurer.")
    mcr_select: int | None = None
    structure: str | None = Field(None, description="'model', or 'fallback' when the structuring answer was unusable.")
    structure_problem: str | None = None
    # size limits (learned and zero-shot rubrics), then what structuring and learning produced and cost
    max_themes: int | None = None
    max_tips: int | None = None
    tips: int | None = None
    tips_with_sources: int | None = None
    structure_calls: int | None = None
    learn_calls: int | None = None
    learn_tokens: int | None = None
    # zero-shot prompt-level rubrics of edits: the source image they were written for
    source_sha256: str | None = None
    # a rubric validated on held-out pairs (arrpo rubric learn --holdout): the accuracies
    holdout: dict[str, Any] | None = None


class Rubric(BaseModel):
    """A Theme-Tips rubric for a task (``t2i``/``edit``) or a single prompt.

    Rendering (:meth:`render`) is a pure function of the themes, so the same rubric always produces
    byte-identical judge prompts (and therefore cache hits).
    """

    model_config = ConfigDict(extra="forbid")

    themes: list[Theme] = Field(min_length=1)
    task: Task | None = None
    scope: RubricScope = "task"
    prompt: str | None = Field(None, description="The prompt a prompt-scoped rubric was written for.")
    provenance: Provenance = Field(default_factory=Provenance)

    def render(self) -> str:
        """Render to the text inserted into the judge prompt."""
        blocks = []
        for index, theme in enumerate(self.themes, start=1):
            weight = f" (weight {theme.weight:g})" if theme.weight is not None else ""
            lines = [f"Rubric {index}:", f"Theme: {theme.theme}{weight}"]
            lines += [f"- Tip{n}: {tip}" for n, tip in enumerate(theme.tips, start=1)]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def to_json(self) -> str:
        """JSON text with the structure plus the rendered text (ignored on load)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["rendered"] = self.render()
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Rubric:
        """Parse JSON written by :meth:`to_json` (the ``rendered`` field is recomputed)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a rubric file must hold a JSON object")
        data.pop("rendered", None)
        return cls.model_validate(data)

    def save(self, path: str | Path) -> Path:
        """Write the rubric as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Rubric:
        """Load a rubric JSON file, with an error that names the file when it is not one."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{path}: not a valid arrpo rubric file ({exc})") from exc

    @classmethod
    def from_criteria(cls, criteria: list[str], **fields) -> Rubric:
        """A flat rubric: one theme per criterion, no tips (used as a fallback and in verification)."""
        return cls(themes=[Theme(theme=text) for text in criteria if text.strip()], **fields)
