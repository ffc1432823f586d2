"""Reading criteria lists and Theme-Tips rubrics out of model replies, repairing common slips.

Both parsers never raise: they return what they could use plus a ``problem`` string when nothing
usable was found (the caller asks again quoting it, or falls back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from arrpo.parse import extract_json_objects, strip_thinking
from arrpo.rubric import Theme
from arrpo.text import valid_utf8

_LIST_KEYS = ("criteria", "rubrics", "rubric", "rules", "items", "checks")
_THEME_LIST_KEYS = ("themes", "categories", "rubrics", "rubric", "dimensions", "items")
_ITEM_TEXT_KEYS = ("tip", "criterion", "text", "description", "rubric", "rule", "check", "content")
_THEME_KEYS = ("theme", "title", "name", "category", "dimension")
_TIP_KEYS = ("tips", "details", "items", "checks", "guidance", "criteria")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)]|\(\d+\))\s+(.+?)\s*$")
_PREFIX = re.compile(r"^\s*(?:(?:criterion|rubric|rule|tip)\s*\d*\s*[:.)-]\s*|\d+[.)]\s+|[-*•]\s+)", re.I)
_MAX_ITEM_CHARS = 600

#: Words that name a candidate (or stand for one, like "one" in "the left one").
_CANDIDATE = r"(?:image|picture|photo(?:graph)?|candidate|output|version|option|edit(?:ed image)?|one)"
#: A noun right after "... image" that makes it a part of one image ("the top image region"), not a
#: candidate named by position.
_NOT_A_CANDIDATE = (
    r"(?!\s*(?:region|area|quality|content|detail|part|portion|side|edge|corner|half|border|background"
    r"|foreground|frame|boundar|composition|resolution|plane|space)\w*)"
)
_POSITION = (
    r"(?:first|second|1st|2nd|former|latter|leftmost|rightmost|top|bottom"
    r"|(?:left|right)(?:[- ]hand)?(?:[- ]side)?)"
)
_RANKING = r"(?:better|worse|best|worst|superior|inferior|stronger|weaker)"
_ROLE = (
    r"(?:preferred|dispreferred|non-preferred|chosen|rejected|winning|losing|winner|loser"
    r"|selected|favou?red|labell?ed|expected|ground[- ]truth)"
)

#: Wording that refers to a candidate by position, by rank or by its label. A criterion that says
#: "the preferred image", "Image 2" or "the image on the left" carries the label into the verifier,
#: so it is rejected.
_LABEL_REFERENCE = re.compile(
    r"\b(?:image|picture|photo|candidate|output|edit(?:ed)? image)\s*(?:#\s*|no\.?\s*)?(?:1|2|one|two)\b"
    rf"|\b{_POSITION}\s+{_CANDIDATE}\b{_NOT_A_CANDIDATE}"
    r"|\b(?:image|picture|photo|candidate|output|version|edit)\s+(?:on|to)\s+the\s+(?:left|right)\b"
    rf"|\bthe\s+{_RANKING}\s+{_CANDIDATE}\b{_NOT_A_CANDIDATE}"
    rf"|\b{_ROLE}\s+{_CANDIDATE}\b"
    rf"|\bthe other {_CANDIDATE}\b",
    re.I,
)
_LETTER_REFERENCE = re.compile(r"\b(?:[Ii]mage|[Cc]andidate|[Oo]ption)\s+[AB]\b")


def refers_to_label(criterion: str) -> bool:
    """Whether a criterion names a candidate by position or label (it would leak the label)."""
    text = criterion.replace("Image BASE", "source image")
    return bool(_LABEL_REFERENCE.search(text) or _LETTER_REFERENCE.search(text))


@dataclass
class CriteriaReply:
    """Criteria read from a reply: ``criteria`` usable, ``rejected`` label-referencing ones."""

    criteria: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    problem: str | None = None
    repaired: bool = False


def _clean(text: str) -> str:
    text = _PREFIX.sub("", text.strip()).strip().strip('"').strip()
    return valid_utf8(re.sub(r"\s+", " ", text)[:_MAX_ITEM_CHARS])  # a cut escape leaves lone surrogates


def _item_text(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        lowered = {str(k).lower(): v for k, v in item.items()}
        for key in _ITEM_TEXT_KEYS:
            if isinstance(lowered.get(key), str):
                return lowered[key]
        strings = [v for v in item.values() if isinstance(v, str)]
        return max(strings, key=len) if strings else None
    return None


def _lookup(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    return next((lowered[k] for k in keys if k in lowered), None)


def _unique(texts: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for text in texts:
        key = text.lower().rstrip(".")
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def parse_criteria(text: str | None, k: int) -> CriteriaReply:
    """Up to ``k`` criteria from ``{"criteria": [...]}`` (or a numbered/bulleted list in prose)."""
    if not text or not text.strip():
        return CriteriaReply(problem="the reply was empty")
    items: list[str] = []
    repaired = False
    for obj in reversed(extract_json_objects(text)):
        value = _lookup(obj, _LIST_KEYS)
        if isinstance(value, str):
            value, repaired = [v for v in value.splitlines() if v.strip()], True
        if isinstance(value, list):
            items = [t for t in (_item_text(v) for v in value) if t]
            if items:
                break
    if not items:
        lines = [m.group(1) for m in map(_LIST_LINE.match, strip_thinking(text).splitlines()) if m]
        items, repaired = lines, bool(lines)
    cleaned = _unique([_clean(t) for t in items])
    if not cleaned:
        return CriteriaReply(problem='no criteria found; expected {"criteria": ["...", ...]}')
    usable = [c for c in cleaned if not refers_to_label(c)]
    rejected = [c for c in cleaned if refers_to_label(c)]
    if not usable:
        return CriteriaReply(
            rejected=rejected,
            problem="every criterion refers to an image by position or by which one is preferred; "
            "each criterion must be checkable on a single image on its own",
        )
    return CriteriaReply(criteria=usable[:k], rejected=rejected, repaired=repaired or len(usable) > k)


@dataclass
class ThemesReply:
    """Theme-Tips themes read from a reply (truncated to the limits), or the problem."""

    themes: list[Theme] = field(default_factory=list)
    problem: str | None = None
    truncated: bool = False


_RENDERED_THEME = re.compile(r"^\s*(?:\*\*)?\s*(?:rubric\s*\d+\s*[:.]\s*)?theme\s*\d*\s*[:.]\s*(.+?)(?:\*\*)?\s*$", re.I)
_RENDERED_TIP = re.compile(r"^\s*(?:[-*•]|\d+[.)])?\s*(?:tip\s*\d*\s*[:.])\s*(.+?)\s*$", re.I)


def _themes_from_objects(text: str) -> list[tuple[str, list[str]]]:
    for obj in reversed(extract_json_objects(text)):
        value = _lookup(obj, _THEME_LIST_KEYS)
        if not isinstance(value, list):
            continue
        found = []
        for item in value:
            if isinstance(item, str):
                found.append((item, []))
                continue
            if not isinstance(item, dict):
                continue
            theme = _lookup(item, _THEME_KEYS)
            tips = _lookup(item, _TIP_KEYS) or []
            if isinstance(tips, str):
                tips = [t for t in tips.splitlines() if t.strip()]
            if isinstance(theme, str) and theme.strip():
                found.append((theme, [t for t in (_item_text(x) for x in tips) if t]))
        if found:
            return found
    return []


def _themes_from_text(text: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for line in strip_thinking(text).splitlines():
        theme = _RENDERED_THEME.match(line)
        if theme:
            found.append((theme.group(1), []))
            continue
        tip = _RENDERED_TIP.match(line)
        if tip and found:
            found[-1][1].append(tip.group(1))
    return found


def parse_themes(text: str | None, max_themes: int, max_tips: int) -> ThemesReply:
    """Themes from ``{"themes": [{"theme", "tips"}]}`` (also the authors' ``categories`` key or the
    rendered ``Theme:``/``Tip1:`` text), cut to ``max_themes`` × ``max_tips``."""
    if not text or not text.strip():
        return ThemesReply(problem="the reply was empty")
    raw = _themes_from_objects(text) or _themes_from_text(text)
    themes: list[Theme] = []
    seen: set[str] = set()
    truncated = False
    for title, tips in raw:
        title = _clean(title)
        if not title or title.lower() in seen:
            continue
        seen.add(title.lower())
        cleaned_tips = _unique([_clean(t) for t in tips])
        truncated = truncated or len(cleaned_tips) > max_tips
        themes.append(Theme(theme=title, tips=cleaned_tips[:max_tips]))
    if not themes:
        return ThemesReply(problem='no themes found; expected {"themes": [{"theme": "...", "tips": ["..."]}]}')
    truncated = truncated or len(themes) > max_themes
    return ThemesReply(themes=themes[:max_themes], truncated=truncated)


_SOURCE_KEYS = ("from", "sources", "source", "criteria_ids", "ids")


def _source_numbers(item: Any, count: int) -> list[int] | None:
    """The criterion numbers a tip object names, or None when absent or not all valid (1..count)."""
    if not isinstance(item, dict):
        return None
    value = _lookup(item, _SOURCE_KEYS)
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    numbers = []
    for entry in value:
        if isinstance(entry, str) and entry.strip().isdigit():
            entry = int(entry.strip())
        if not isinstance(entry, int) or isinstance(entry, bool) or not 1 <= entry <= count:
            return None
        numbers.append(entry)
    return sorted(set(numbers))


def parse_tip_sources(text: str | None, count: int) -> dict[tuple[str, str], list[int] | None]:
    """(theme, tip) → the criterion numbers (1..``count``) the structurer said the tip came from.

    Keys are lower-cased cleaned texts, as :func:`parse_themes` cleans them. A tip whose ``from``
    is missing or names a number outside 1..count maps to None (the model did not say, or said
    something impossible).
    """
    found: dict[tuple[str, str], list[int] | None] = {}
    for obj in reversed(extract_json_objects(text or "")):
        value = _lookup(obj, _THEME_LIST_KEYS)
        if not isinstance(value, list):
            continue
        for item in value:
            if not isinstance(item, dict):
                continue
            theme = _lookup(item, _THEME_KEYS)
            tips = _lookup(item, _TIP_KEYS) or []
            if not isinstance(theme, str) or not isinstance(tips, list):
                continue
            for tip in tips:
                tip_text = _item_text(tip)
                if tip_text:
                    found[(_clean(theme).lower(), _clean(tip_text).lower())] = _source_numbers(tip, count)
        if found:
            return found
    return found
