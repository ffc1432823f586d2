"""Parsing model answers: robust JSON extraction and the pairwise rank contract.

Models wrap JSON in code fences, add prose, use single quotes, leave trailing commas, think aloud
in ``<think>`` blocks, or answer ``{"winner": "Image 2"}``. :func:`extract_json_objects` finds
every JSON object a reply contains (repairing the common slips); :func:`parse_rank_answer`
applies the judge's output contract and says precisely why an answer is unusable.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

Choice = Literal["1", "2", "tie"]

_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.S | re.I)
_THINK_END = re.compile(r"</think(?:ing)?>", re.I)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_RANK_IN_TEXT = re.compile(r"""["']?rank(?:s|ing)?["']?\s*[:=]\s*\[\s*(-?\d+)\s*,\s*(-?\d+)\s*\]""", re.I)
_BARE_ARRAY = re.compile(r"^\s*\[\s*(-?\d+)\s*,\s*(-?\d+)\s*\]\s*$")
#: A rank written as text must still read as a pair ("[2, 1]", "2, 1"), not as prose with digits.
_RANK_STRING = re.compile(r"^\s*[\[(]?\s*(-?\d+)(?:\s*[,;]\s*|\s+)(-?\d+)\s*[\])]?\s*$")
_REFUSAL = re.compile(
    r"\b(i(?:'| a)?m sorry|i cannot|i can't|i can not|i am unable|i'm unable|as an ai)\b", re.I
)
_RANK_KEYS = ("rank", "ranks", "ranking", "rankings")
_WINNER_KEYS = ("winner", "better", "better_image", "preferred", "preference", "choice", "best")
_REASON_KEYS = ("reason", "reasoning", "explanation", "rationale", "analysis")
_TIE_WORDS = {"tie", "equal", "both", "same", "draw", "neither", "none"}


def strip_thinking(text: str) -> str:
    """Remove ``<think>…</think>`` blocks, an unterminated leading one, and the reasoning before
    a closing tag whose opening tag was in the prompt (chat templates that open ``<think>``)."""
    text = _THINK.sub("", text)
    unpaired_ends = list(_THINK_END.finditer(text))
    if unpaired_ends:
        text = text[unpaired_ends[-1].end():]
    if re.match(r"\s*<think", text, re.I) and "</think" not in text.lower():
        return ""
    return text


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` span, respecting strings and nesting."""
    spans, depth, start, in_string, quote, escape = [], 0, -1, False, "", False
    for i, ch in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote:
                in_string = False
            continue
        if ch in "\"'" and depth > 0:
            # an apostrophe inside prose is not a string delimiter; only quote-like starts count
            if ch == '"' or (i > 0 and text[i - 1] in "{[,: \n\t"):
                in_string, quote = True, ch
            continue
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _loads_lenient(blob: str) -> Any:
    try:
        return json.loads(blob)
    except json.JSONDecodeError:
        pass
    repaired = _TRAILING_COMMA.sub(r"\1", blob)
    try:
        return json.loads(repaired)
    except json.JSONDecodeError:
        pass
    pythonish = re.sub(r"\btrue\b", "True", repaired)
    pythonish = re.sub(r"\bfalse\b", "False", pythonish)
    pythonish = re.sub(r"\bnull\b", "None", pythonish)
    try:
        value = ast.literal_eval(pythonish)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("not JSON") from None
    return value


def extract_json_objects(text: str) -> list[dict[str, Any]]:
    """All JSON objects found in a model reply, fenced ones first; repairs common slips."""
    text = strip_thinking(text or "")
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates += _balanced_objects(text)
    found: list[dict[str, Any]] = []
    for blob in candidates:
        blob = blob.strip()
        if not blob.startswith("{"):
            inner = _balanced_objects(blob)
            if not inner:
                continue
            blob = inner[0]
        try:
            value = _loads_lenient(blob)
        except ValueError:
            continue
        if isinstance(value, dict) and value not in found:
            found.append(value)
    return found


def extract_json(text: str) -> dict[str, Any] | None:
    """The last JSON object in a reply (models put the final answer last), or ``None``."""
    objects = extract_json_objects(text)
    return objects[-1] if objects else None


@dataclass(frozen=True)
class RankAnswer:
    """A parsed judge answer: ``choice`` is the better shown image, or ``error`` says why not."""

    choice: Choice | None
    reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.choice is not None


def _lookup(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for key in keys:
        if key in lowered:
            return lowered[key]
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def _choice_from_ranks(values: Any, allow_ties: bool) -> tuple[Choice | None, str | None]:
    if isinstance(values, str):
        pair = _RANK_STRING.match(values)
        if pair is None:
            return None, f"'rank' is text that does not read as two ranks: {values[:80]!r}"
        values = [pair.group(1), pair.group(2)]
    if not isinstance(values, (list, tuple)):
        return None, f"'rank' is not a list ({type(values).__name__})"
    if len(values) != 2:
        return None, f"expected 2 ranks, got {len(values)}"
    ranks = [_as_int(v) for v in values]
    if any(r is None for r in ranks):
        return None, f"ranks are not integers: {list(values)!r}"
    first, second = ranks
    if first not in (1, 2) or second not in (1, 2):
        return None, f"ranks must be 1 or 2, got {ranks}"
    if first == second:
        if allow_ties:
            return "tie", None
        return None, f"tie {ranks} where ties are not allowed"
    return ("1" if first == 1 else "2"), None


def _choice_from_winner(value: Any, allow_ties: bool) -> tuple[Choice | None, str | None]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():
            return None, f"unreadable winner {value!r}"
        text = str(int(value))
    elif isinstance(value, str):
        text = value.strip().lower()
    else:
        return None, f"unreadable winner {value!r}"
    if text in _TIE_WORDS:
        return ("tie", None) if allow_ties else (None, f"tie ({value!r}) where ties are not allowed")
    digits = set(re.findall(r"(?<![\d.])([12])(?![\d.])", text))
    if text in ("first", "image one", "the first image"):
        digits = {"1"}
    elif text in ("second", "image two", "the second image"):
        digits = {"2"}
    if len(digits) == 1:
        return digits.pop(), None  # type: ignore[return-value]
    return None, f"unreadable winner {value!r}"


def _from_object(obj: dict[str, Any], allow_ties: bool) -> RankAnswer:
    reason = _lookup(obj, _REASON_KEYS)
    reason = reason if isinstance(reason, str) else (json.dumps(reason) if reason else None)
    ranks = _lookup(obj, _RANK_KEYS)
    winner = _lookup(obj, _WINNER_KEYS)
    if ranks is None and winner is None:
        return RankAnswer(None, reason, "JSON has no 'rank' (or 'winner') field")
    by_rank = _choice_from_ranks(ranks, allow_ties) if ranks is not None else None
    by_winner = _choice_from_winner(winner, allow_ties) if winner is not None else None
    if by_rank and by_winner and by_rank[0] and by_winner[0] and by_rank[0] != by_winner[0]:
        return RankAnswer(None, reason, f"'rank' {ranks!r} contradicts 'winner' {winner!r}")
    choice, error = by_rank if by_rank and by_rank[0] else (by_winner or by_rank)  # type: ignore[misc]
    if choice is None and by_rank:
        error = by_rank[1]
    return RankAnswer(choice, reason, error)


def parse_rank_answer(text: str | None, *, allow_ties: bool = False) -> RankAnswer:
    """Apply the pairwise output contract ``{"rank": [r1, r2], "reason": ...}`` to a reply.

    ``choice`` is ``"1"`` when the first shown image wins, ``"2"`` when the second does, and
    ``"tie"`` only when ``allow_ties``. Never raises: unusable answers carry an ``error``.
    """
    if text is None or not text.strip():
        return RankAnswer(None, None, "empty answer")
    visible = strip_thinking(text)
    if not visible.strip():
        return RankAnswer(None, None, "answer holds only unfinished reasoning")
    objects = extract_json_objects(visible)
    answers = [_from_object(obj, allow_ties) for obj in objects]
    usable = [a for a in answers if a.ok]
    if usable:
        if len({a.choice for a in usable}) > 1:
            return RankAnswer(None, usable[-1].reason, "several JSON answers that disagree")
        return usable[-1]
    if answers:
        return answers[-1]
    matches = list(_RANK_IN_TEXT.finditer(visible)) or list(filter(None, [_BARE_ARRAY.match(visible)]))
    if matches:
        found = [_choice_from_ranks([m.group(1), m.group(2)], allow_ties) for m in matches]
        choices = {choice for choice, _ in found if choice is not None}
        if len(choices) > 1:
            return RankAnswer(None, None, "several ranks in the text that disagree")
        return RankAnswer(*found[-1]) if not choices else RankAnswer(choices.pop(), None, None)
    if _REFUSAL.search(visible):
        return RankAnswer(None, None, "the model refused or could not decide")
    return RankAnswer(None, None, "no JSON answer found")
