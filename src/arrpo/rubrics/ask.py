"""Ask a model for a JSON answer, quoting the problem and asking again when it is unusable.

Shared by the criteria generator, the refiner, the structurer and the zero-shot writer. Backend
failures (after the backend's own retries) propagate as :class:`~arrpo.vlm.base.BackendError`;
unusable answers never raise: the caller gets the last parse result and decides (drop, fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from arrpo.prompts import render
from arrpo.schema import Usage
from arrpo.vlm.base import Message, VLMBackend, VLMRequest

T = TypeVar("T")

CRITERIA_SHAPE = '{"criteria": ["<criterion>", ...], "reason": "<short reason>"}'
THEMES_SHAPE = '{"themes": [{"theme": "<title>", "tips": ["<tip>", ...]}, ...]}'
STRUCTURE_SHAPE = '{"themes": [{"theme": "<title>", "tips": [{"tip": "<tip>", "from": [<criterion number>, ...]}, ...]}, ...]}'

CRITERIA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"criteria": {"type": "array", "items": {"type": "string"}}, "reason": {"type": "string"}},
    "required": ["criteria"],
}


def _themes_schema(tip: dict[str, Any]) -> dict[str, Any]:
    """The schema of a reply listing themes whose tips each match ``tip``."""
    theme = {
        "type": "object",
        "properties": {"theme": {"type": "string"}, "tips": {"type": "array", "items": tip}},
        "required": ["theme", "tips"],
    }
    return {
        "type": "object",
        "properties": {"themes": {"type": "array", "items": theme}, "reason": {"type": "string"}},
        "required": ["themes"],
    }


THEMES_SCHEMA: dict[str, Any] = _themes_schema({"type": "string"})

#: The structurer's reply: tips carry the numbers of the criteria they were drawn from.
STRUCTURE_SCHEMA: dict[str, Any] = _themes_schema({
    "type": "object",
    "properties": {"tip": {"type": "string"}, "from": {"type": "array", "items": {"type": "integer"}}},
    "required": ["tip", "from"],
})


def model_name(backend: VLMBackend) -> str:
    """The model's name without the endpoint (``openai:URL#name`` → ``name``): a server moved to
    another port is still the same model for provenance and resuming."""
    return backend.model_id.rsplit("#", 1)[-1]


@dataclass
class Asked(Generic[T]):
    """The parsed reply of the last attempt, with the raw texts and the total usage."""

    parsed: T
    raw: list[str]
    attempts: int
    usage: Usage


async def ask_json(
    backend: VLMBackend,
    messages: Sequence[Message],
    parse: Callable[[str], T],
    problem_of: Callable[[T], str | None],
    *,
    shape: str,
    schema: dict[str, Any] | None = None,
    retries: int = 2,
    temperature: float = 0.0,
    max_tokens: int = 2048,
) -> Asked[T]:
    """Ask, parse, and on an unusable answer ask again (up to ``retries`` times) quoting why."""
    history = list(messages)
    raws: list[str] = []
    usage = Usage()
    parsed: T | None = None
    for attempt in range(retries + 1):
        request = VLMRequest(
            messages=tuple(history), temperature=temperature, max_tokens=max_tokens, json_schema=schema
        )
        response = await backend.complete(request)
        usage = usage + response.usage
        raws.append(response.text)
        parsed = parse(response.text)
        problem = problem_of(parsed)
        if problem is None:
            return Asked(parsed, raws, attempt + 1, usage)
        if response.finish_reason == "length":
            problem += " (the reply was cut off at the token limit; be shorter)"
        history += [Message.assistant(response.text or ""), Message.user(render("rubric_repair", problem=problem, shape=shape))]
    assert parsed is not None
    return Asked(parsed, raws, retries + 1, usage)
