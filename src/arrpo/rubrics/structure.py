"""Consolidate verified criteria into one Theme-Tips rubric (ARR's hierarchical structuring).

One model call groups the criteria pool into at most ``max_themes`` themes of at most
``max_tips`` tips, ordered by diagnostic value; for every tip the model also names the numbers of
the criteria it drew it from (validated: a missing or impossible number leaves the tip's sources
unknown). When the model's reply stays unusable after the repair retries,
:func:`fallback_themes` builds the rubric deterministically from the criteria.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from arrpo.prompts import render
from arrpo.rubric import Theme
from arrpo.rubrics.ask import STRUCTURE_SCHEMA, STRUCTURE_SHAPE, ask_json
from arrpo.rubrics.parsing import ThemesReply, parse_themes, parse_tip_sources
from arrpo.schema import Task, Usage
from arrpo.vlm.base import BackendError, Message, VLMBackend

StructureMethod = Literal["model", "fallback"]


def normalise_criterion(text: str) -> str:
    """The key two criteria share when they say the same thing (case, spacing, final period)."""
    return " ".join(text.lower().split()).rstrip(".")


def pool_criteria(groups: Sequence[Sequence[str]]) -> list[tuple[str, int]]:
    """Distinct criteria with how many pairs produced them, most frequent first (stable order)."""
    counts: Counter[str] = Counter()
    first_text: dict[str, str] = {}
    order: dict[str, int] = {}
    for group in groups:
        for text in dict.fromkeys(group):
            key = normalise_criterion(text)
            if key not in first_text:
                first_text[key], order[key] = text, len(order)
            counts[key] += 1
    keys = sorted(first_text, key=lambda k: (-counts[k], order[k]))
    return [(first_text[k], counts[k]) for k in keys]


def fallback_themes(criteria: Sequence[str], max_themes: int, max_tips: int) -> list[Theme]:
    """A deterministic rubric: the first ``max_themes × max_tips`` criteria as a numbered list,
    one per theme (criteria already come ordered by how many pairs produced them)."""
    limit = max(1, max_themes * max(1, max_tips))
    return [Theme(theme=text) for text in list(criteria)[:limit]]


@dataclass
class Structured:
    """The themes, how they were made, and for every theme the criterion numbers (1-based, into the
    criteria given) behind it and behind each of its tips (None: the model did not say)."""

    themes: list[Theme]
    method: StructureMethod
    problem: str | None
    usage: Usage
    attempts: int
    theme_sources: list[list[int] | None] = field(default_factory=list)
    tip_sources: list[list[list[int] | None]] = field(default_factory=list)

    @property
    def tips_with_sources(self) -> int:
        return sum(s is not None for tips in self.tip_sources for s in tips)


def _sources(themes: list[Theme], raw: str, count: int) -> tuple[list[list[int] | None], list[list[list[int] | None]]]:
    by_text = parse_tip_sources(raw, count)
    theme_sources: list[list[int] | None] = []
    tip_sources: list[list[list[int] | None]] = []
    for theme in themes:
        tips = [by_text.get((theme.theme.lower(), tip.lower())) for tip in theme.tips]
        known = [n for numbers in tips if numbers for n in numbers]
        tip_sources.append(tips)
        theme_sources.append(sorted(set(known)) if known else None)
    return theme_sources, tip_sources


async def structure_criteria(
    backend: VLMBackend,
    criteria: Sequence[str],
    task: Task,
    *,
    max_themes: int = 10,
    max_tips: int = 4,
    retries: int = 2,
    temperature: float = 0.0,
    max_tokens: int = 4096,
) -> Structured:
    """Group ``criteria`` into Theme-Tips themes with one model call, or fall back.

    Backend failures propagate (:class:`BackendError`); unusable replies give the fallback.
    """
    if not criteria:
        raise ValueError("no verified criteria to structure")
    text = render("rubric_structure", task=task, criteria=list(criteria), max_themes=max_themes, max_tips=max_tips)
    asked = await ask_json(
        backend,
        [Message.user(text)],
        lambda reply: parse_themes(reply, max_themes, max_tips),
        lambda parsed: parsed.problem,
        shape=STRUCTURE_SHAPE,
        schema=STRUCTURE_SCHEMA,
        retries=retries,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    reply: ThemesReply = asked.parsed
    if reply.problem is None:
        theme_sources, tip_sources = _sources(reply.themes, asked.raw[-1], len(criteria))
        return Structured(reply.themes, "model", None, asked.usage, asked.attempts, theme_sources, tip_sources)
    themes = fallback_themes(criteria, max_themes, max_tips)
    return Structured(
        themes, "fallback", reply.problem, asked.usage, asked.attempts,
        theme_sources=[[i + 1] for i in range(len(themes))], tip_sources=[[] for _ in themes],
    )


__all__ = [
    "BackendError",
    "Structured",
    "fallback_themes",
    "normalise_criterion",
    "pool_criteria",
    "structure_criteria",
]
