"""Parsing model answers: robust JSON extraction and the pairwise rank contract.

Models wrap JSON in code fences, add prose, use single quotes, leave trailing commas, think aloud
in ``<think>`` blocks, write a draft answer before the final one, or answer
``{"winner": "Image 2"}``. :func:`extract_json_objects` finds every JSON object a reply contains
(repairing the common slips); :func:`parse_rank_answer` applies the judge's output contract and
says precisely why an answer is unusable.

Every answer is hostile input. Each step here is linear in the answer's length (no regular
expression that backtracks over the whole text, no pairwise comparison of found objects), the
nesting depth and the digits of a number are bounded, and answers longer than
:data:`MAX_PARSE_CHARS` are refused unread.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from arrpo.text import preview

Choice = Literal["1", "2", "tie"]

#: Longest answer (in characters) the parser reads; a longer one is an unusable answer.
MAX_PARSE_CHARS = 1_000_000
#: Deepest ``{``/``[`` nesting of a JSON object the parser decodes (a judge answer needs 3).
MAX_JSON_DEPTH = 64
#: Most JSON objects read from one reply; a reply with more is not an answer.
MAX_JSON_OBJECTS = 256
#: Objects larger than this are not tried as Python literals (single quotes): it is slow and big.
_MAX_LITERAL_EVAL_CHARS = 64_000
#: A rank written with more digits than this is out of range, whatever its value.
_MAX_RANK_DIGITS = 9
#: How far back (characters) from an answer the parser looks for "final", "draft", "example".
_MARK_WINDOW = 60

#: File name under which single-quoted answers are compiled as Python literals; the compiler's
#: warnings about them ("invalid escape sequence") are model noise, not the user's business.
_LITERAL_FILENAME = "<arrpo-answer>"
warnings.filterwarnings("ignore", module=re.escape(_LITERAL_FILENAME))

_THINK_TAG = re.compile(r"<(/?)think(?:ing)?>", re.I)
_FENCE = re.compile(r"```(?:json|JSON)?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_STRUCTURE = re.compile(r"""[{}\[\]"']""")
_RUN = {ch: re.compile(re.escape(ch) + "+") for ch in "{}[]"}
# the rest of a string after its opening quote, up to and including the closing quote
_STRING_REST = {
    '"': re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S),
    "'": re.compile(r"[^'\\]*(?:\\.[^'\\]*)*'", re.S),
}
_RANK_IN_TEXT = re.compile(r"""["']?rank(?:s|ing)?["']?\s*[:=]\s*\[\s*(-?\d+)\s*,\s*(-?\d+)\s*\]""", re.I)
_BARE_ARRAY = re.compile(r"^\s*\[\s*(-?\d+)\s*,\s*(-?\d+)\s*\]\s*$")
#: A rank written as text must still read as a pair ("[2, 1]", "2, 1"), not as prose with digits.
_RANK_STRING = re.compile(r"^\s*[\[(]?\s*(-?\d+)(?:\s*[,;]\s*|\s+)(-?\d+)\s*[\])]?\s*$")
_RANK_VALUE = re.compile(r"\s*(-?\d+)\s*(?:st|nd|rd|th)?\s*", re.I)
_REFUSAL = re.compile(
    r"\b(i(?:'| a)?m sorry|i cannot|i can't|i can not|i am unable|i'm unable|as an ai)\b", re.I
)
_RANK_KEYS = ("rank", "ranks", "ranking", "rankings")
_WINNER_KEYS = ("winner", "better", "better_image", "preferred", "preference", "choice", "best")
_REASON_KEYS = ("reason", "reasoning", "explanation", "rationale", "analysis")
_TIE_WORDS = {"tie", "equal", "both", "same", "draw", "neither", "none"}
#: Words with which a winner text names both images or neither ("both images", "either one").
_NO_SINGLE = re.compile(r"\b(?:tie|equal(?:ly)?|both|same|draw|neither|either|none)\b")

# ---- naming an image in free text ("Image 2", "the first one", "Edited Image 1")
_ORDINAL = {"first": "1", "1st": "1", "second": "2", "2nd": "2", "one": "1", "two": "2", "1": "1", "2": "2"}
_IMAGE_NAME = (
    r"(?:the\s+)?(?:(?:edited\s+)?(?:image|picture|img|candidate|option)\s*(?:#\s*|no\.?\s*)?[_-]?\s*"
    r"(?P<{g}>[12]|one|two)|(?P<{g}o>first|second|1st|2nd)(?:\s+(?:edited\s+)?(?:image|picture|one|candidate|option))?)"
)
_ONE_IMAGE = re.compile(r"^" + _IMAGE_NAME.format(g="a") + r"$")
_ORDERING = re.compile(
    r"^" + _IMAGE_NAME.format(g="a") + r"\s*(?:>>?|≻|is\s+better\s+than|better\s+than|beats|over)\s*"
    + _IMAGE_NAME.format(g="b") + r"$"
)
_IMAGE_MENTION = re.compile(
    r"(?<![\d.])([12])(?![\d.])|\b(first|second)\b|\b(?:image|picture|img)\s+(one|two)\b"
)
#: Words that turn "Image 1" into a statement against it, or make it unclear.
_NEGATIVE = re.compile(
    r"\b(?:not|no|never|neither|nor|worse|worst|inferior|lose|loses|loser|lost|losing|weaker|"
    r"poorer|fail|fails|failed|lacks?|less|fewer|lower|bad|wrong)\b|n't\b"
)
_IMAGE_NAME_NEG = _IMAGE_NAME.format(g="a")
#: The few plain forms whose meaning is the other image: "not Image 1", "Image 1 is worse".
_AGAINST = re.compile(
    r"^(?:(?:definitely|clearly|certainly)\s+)?not\s+" + _IMAGE_NAME_NEG + r"$"
    r"|^" + _IMAGE_NAME_NEG.replace("?P<a", "?P<b") + r"\s*,?\s*(?:(?:is|was|looks|seems)\s+)?"
    r"(?:(?:clearly|slightly|much|far|a\s+bit|definitely|somewhat)\s+)?"
    r"(?:worse|inferior|weaker|poorer|the\s+worse(?:\s+one|\s+image)?|the\s+loser|worst|loses)$"
    r"|^" + _IMAGE_NAME_NEG.replace("?P<a", "?P<c") + r"\s*,?\s*(?:is\s+not|isn't|is\s+not\s+the)\s+"
    r"(?:better|the\s+better(?:\s+one|\s+image)?|preferred|the\s+winner|best|the\s+best(?:\s+one|\s+image)?)$"
)
#: Words before an answer that say it is the one that counts, or that it does not ("the final
#: image", "the initial image" name images, not answers).
_NOT_AN_IMAGE = r"\b(?!\s+(?:edited\s+|source\s+|input\s+)?(?:image|picture|photo|edit|input|source)\b)"
_FINAL_MARK = re.compile(r"\b(?:final(?:ly)?|revised|corrected|updated|in\s+conclusion)" + _NOT_AN_IMAGE, re.I)
_DRAFT_MARK = re.compile(
    r"\b(?:draft|initial(?:ly)?|preliminary|tentative(?:ly)?|first\s+guess)" + _NOT_AN_IMAGE, re.I
)
_EXAMPLE_MARK = re.compile(r"\b(?:example|e\.g\.|for\s+instance|template|schema|such\s+as|like\s+this)\b|\be\.g\b", re.I)
Mark = Literal["final", "draft", "example"] | None


def strip_thinking(text: str) -> str:
    """Remove ``<think>…</think>`` blocks, an unterminated leading one, and the reasoning before
    a closing tag whose opening tag was in the prompt (chat templates that open ``<think>``).

    One pass over the tags: each opening tag runs to the first closing tag after it (an opening
    tag inside a block is part of the block); a closing tag outside any block ends reasoning
    that began in the prompt, so only what follows the last such tag is kept.
    """
    kept: list[str] = []
    position, block_start = 0, -1
    for tag in _THINK_TAG.finditer(text):
        closing = bool(tag.group(1))
        if block_start >= 0:
            if closing:
                block_start, position = -1, tag.end()
        elif closing:  # reasoning opened in the prompt: drop everything before
            kept, position = [], tag.end()
        else:
            kept.append(text[position : tag.start()])
            block_start = tag.start()
    kept.append(text[block_start:] if block_start >= 0 else text[position:])
    visible = "".join(kept)
    if re.match(r"\s*<think", visible, re.I) and "</think" not in visible.lower():
        return ""
    return visible


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    depth: int


def _balanced_spans(text: str, offset: int = 0, limit: int = MAX_JSON_OBJECTS + 1) -> list[_Span]:
    """The first ``limit`` top-level ``{...}`` spans, respecting strings and nesting, each with
    its deepest nesting.

    Jumps from one run of structural characters to the next, and over whole strings, with
    compiled patterns, so the work is linear in ``len(text)`` and light per character.
    """
    spans: list[_Span] = []
    depth, deepest, brackets, start, position = 0, 0, 0, -1, 0
    while len(spans) < limit:
        found = _STRUCTURE.search(text, position)
        if found is None:
            break
        i = found.start()
        ch = text[i]
        position = i + 1
        if ch in "\"'":
            # an apostrophe inside prose is not a string delimiter; only quote-like starts count
            if depth > 0 and (ch == '"' or (i > 0 and text[i - 1] in "{[,: \n\t")):
                rest = _STRING_REST[ch].match(text, i + 1)
                if rest is None:
                    break  # an unterminated string: nothing after it can close an object
                position = rest.end()
            continue
        run = _RUN[ch].match(text, i).group(0)  # type: ignore[union-attr]
        position = i + len(run)
        if ch == "{":
            if depth == 0:
                start, deepest, brackets = i, 0, 0
            depth += len(run)
        elif ch == "}":
            if depth > len(run):
                depth -= len(run)
            elif depth > 0:  # this run closes the object; the braces after it are stray
                spans.append(_Span(offset + start, offset + i + depth, deepest))
                depth = 0
        elif depth > 0:  # brackets only count towards the nesting depth
            brackets = brackets + len(run) if ch == "[" else max(0, brackets - len(run))
        deepest = max(deepest, depth + brackets)
    return spans


def _loads_lenient(blob: str) -> Any:
    """Decode a JSON object, repairing trailing commas and Python-style literals.

    Raises ValueError for anything that is not one (including nesting past the recursion limit
    and integers past Python's digit limit).
    """
    try:
        return json.loads(blob)
    except (ValueError, RecursionError):
        pass
    repaired = _TRAILING_COMMA.sub(r"\1", blob)
    try:
        return json.loads(repaired)
    except (ValueError, RecursionError):
        pass
    if len(repaired) > _MAX_LITERAL_EVAL_CHARS:
        raise ValueError("not JSON")
    pythonish = re.sub(r"\btrue\b", "True", repaired)
    pythonish = re.sub(r"\bfalse\b", "False", pythonish)
    pythonish = re.sub(r"\bnull\b", "None", pythonish)
    try:
        value = ast.literal_eval(ast.parse(pythonish, filename=_LITERAL_FILENAME, mode="eval"))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("not JSON") from None
    return value


@dataclass(frozen=True)
class _Found:
    """A JSON object found in a reply, where it starts and ends."""

    start: int
    end: int
    value: dict[str, Any]
    fenced: bool


def _decode_span(text: str, span: _Span) -> dict[str, Any] | None:
    if span.depth > MAX_JSON_DEPTH:
        return None
    try:
        value = _loads_lenient(text[span.start : span.end])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _find_objects(text: str) -> list[_Found]:
    """Every JSON object in ``text``: those inside code fences and those in the open text."""
    found: list[_Found] = []
    for fence in itertools.islice(_FENCE.finditer(text), MAX_JSON_OBJECTS + 1):
        body = fence.group(1)
        stripped = body.strip()
        if stripped.startswith("{"):
            start = fence.start(1) + body.index("{")
            span = _Span(start, start + len(stripped), _max_depth_bound(stripped))
        else:
            inner = _balanced_spans(body, fence.start(1))
            if not inner:
                continue
            span = inner[0]
        value = _decode_span(text, span)
        if value is not None:
            found.append(_Found(span.start, span.end, value, True))
    for span in _balanced_spans(text):
        value = _decode_span(text, span)
        if value is not None:
            found.append(_Found(span.start, span.end, value, False))
    return found


def _max_depth_bound(blob: str) -> int:
    """An upper bound of the nesting of ``blob`` (brackets inside strings count too)."""
    depth = deepest = 0
    for match in re.finditer(r"[{\[\]}]", blob):
        depth += 1 if match.group(0) in "{[" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
    return deepest


def _identity(value: Any) -> str:
    """A key equal for equal decoded objects (used to drop duplicates in linear time)."""
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(id(value))


def extract_json_objects(text: str) -> list[dict[str, Any]]:
    """All JSON objects found in a model reply, fenced ones first; repairs common slips."""
    text = strip_thinking(text or "")
    if len(text) > MAX_PARSE_CHARS:
        return []
    found = _find_objects(text)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in found:
        key = _identity(item.value)
        if key not in seen:
            seen.add(key)
            out.append(item.value)
    return out


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


def _as_rank(value: Any) -> int | None:
    """A rank value as an integer: ``2``, ``2.0``, ``"2"``, ``"2nd"``; ``None`` if it is not one.

    More than :data:`_MAX_RANK_DIGITS` digits reads as an out-of-range rank without converting
    it (Python refuses to convert more than 4300 digits, and no rank needs ten).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _RANK_VALUE.fullmatch(value) if len(value) <= 40 else None
        if match:
            return _bounded_int(match.group(1))
    return None


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-").lstrip("0")) > _MAX_RANK_DIGITS:
        return 10**_MAX_RANK_DIGITS  # out of range, however large
    return int(digits)


def _image_number(match: re.Match[str], group: str) -> str:
    return _ORDINAL[match.group(group) or match.group(group + "o")]


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).strip(" .!\"'`*:;")


def _choice_from_ordering(text: str) -> Choice | None:
    """``"Image 2"`` (one image named) or ``"Image 2 > Image 1"`` (best first): the winner."""
    one = _ONE_IMAGE.match(text)
    if one:
        return _image_number(one, "a")  # type: ignore[return-value]
    ordering = _ORDERING.match(text)
    if ordering:
        first, second = _image_number(ordering, "a"), _image_number(ordering, "b")
        if first != second:
            return first  # type: ignore[return-value]
    return None


def _choice_from_ranks(values: Any, allow_ties: bool) -> tuple[Choice | None, str | None]:
    if isinstance(values, dict):
        values, problem = _ranks_by_image(values)
        if problem:
            return None, problem
    if isinstance(values, str):
        pair = _RANK_STRING.match(values) if len(values) <= 200 else None
        if pair is None:
            named = _choice_from_ordering(_normalise(values)) if len(values) <= 200 else None
            if named is not None:
                return named, None
            return None, f"'rank' is text that does not read as two ranks: {preview(values)}"
        values = [pair.group(1), pair.group(2)]
    if not isinstance(values, (list, tuple)):
        return None, f"'rank' is not a list ({type(values).__name__})"
    if len(values) != 2:
        return None, f"expected 2 ranks, got {len(values)}"
    if all(isinstance(v, str) and len(v) <= 60 for v in values):
        named = [_ONE_IMAGE.match(_normalise(v)) for v in values]
        if all(m and m.group("a") for m in named):  # "Image 2" (not a bare "second": a rank word)
            first, second = (_image_number(m, "a") for m in named)  # type: ignore[arg-type]
            if first != second:  # the images listed best first
                return first, None  # type: ignore[return-value]
    ranks = [_as_rank(v) for v in values]
    if any(r is None for r in ranks):
        return None, f"ranks are not integers: {preview(list(values))}"
    first, second = ranks
    if first not in (1, 2) or second not in (1, 2):
        return None, f"ranks must be 1 or 2, got {preview(ranks)}"
    if first == second:
        if allow_ties:
            return "tie", None
        return None, f"tie {ranks} where ties are not allowed"
    return ("1" if first == 1 else "2"), None


def _ranks_by_image(ranks: dict[Any, Any]) -> tuple[list[Any], str | None]:
    """``{"Image 1": 2, "Image 2": 1}`` as ``[2, 1]``; the keys must name the two images."""
    by_number: dict[str, Any] = {}
    for key, value in ranks.items():
        named = _ONE_IMAGE.match(_normalise(str(key))) if len(str(key)) <= 60 else None
        if named is None:
            return [], f"'rank' maps {preview(key)}, not an image, to a rank"
        by_number[_image_number(named, "a")] = value
    if set(by_number) != {"1", "2"}:
        return [], f"'rank' does not give a rank to each of the two images: {preview(ranks)}"
    return [by_number["1"], by_number["2"]], None


def _choice_from_winner(value: Any, allow_ties: bool) -> tuple[Choice | None, str | None]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():
            return None, f"unreadable winner {preview(value)}"
        if value in (1, 2):
            return str(int(value)), None  # type: ignore[return-value]
        return None, f"unreadable winner {preview(value)}"
    if not isinstance(value, str) or len(value) > 200:
        return None, f"unreadable winner {preview(value)}"
    text = _normalise(value)
    if text in _TIE_WORDS:
        return ("tie", None) if allow_ties else (None, f"tie ({preview(value)}) where ties are not allowed")
    named = _choice_from_ordering(text)
    if named is not None:
        return named, None
    mentioned = set()
    for mention in _IMAGE_MENTION.finditer(text):
        mentioned.add(_ORDINAL[next(g for g in mention.groups() if g)])
    if len(mentioned) != 1:
        return None, f"unreadable winner {preview(value)}"
    number = mentioned.pop()
    if not _NEGATIVE.search(text):
        return number, None  # type: ignore[return-value]
    if _AGAINST.match(text):  # "not Image 1", "Image 1 is worse": the other image
        return ("2" if number == "1" else "1"), None
    return None, f"winner {preview(value)} names image {number} with a negation or hedge: ambiguous"


def _names_no_single_image(value: Any) -> bool:
    """Whether a winner text names both images or neither (``"Image 1 or 2"``, ``"both"``)."""
    if not isinstance(value, str) or len(value) > 200:
        return False
    text = _normalise(value)
    mentioned = {_ORDINAL[next(g for g in m.groups() if g)] for m in _IMAGE_MENTION.finditer(text)}
    return len(mentioned) > 1 or bool(_NO_SINGLE.search(text))


def _decision_fields(obj: dict[str, Any]) -> tuple[Any, Any]:
    return _lookup(obj, _RANK_KEYS), _lookup(obj, _WINNER_KEYS)


def _nested_decisions(obj: dict[str, Any], depth: int = 2) -> list[dict[str, Any]]:
    """Objects inside ``obj`` (e.g. ``{"result": {"rank": …}}``) that carry a decision."""
    out: list[dict[str, Any]] = []
    for value in obj.values():
        if isinstance(value, dict):
            rank, winner = _decision_fields(value)
            if rank is not None or winner is not None:
                out.append(value)
            elif depth > 1:
                out += _nested_decisions(value, depth - 1)
    return out


def _reason_text(reason: Any) -> str | None:
    if reason is None or isinstance(reason, str):
        return reason or None
    try:
        return json.dumps(reason, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return preview(reason, 200)


def _from_object(obj: dict[str, Any], allow_ties: bool) -> RankAnswer:
    reason = _reason_text(_lookup(obj, _REASON_KEYS))
    ranks, winner = _decision_fields(obj)
    if ranks is None and winner is None:
        nested = _nested_decisions(obj)
        if not nested:
            return RankAnswer(None, reason, "JSON has no 'rank' (or 'winner') field")
        answers = [_from_object(inner, allow_ties) for inner in nested]
        choices = {a.choice for a in answers if a.ok}
        if len(choices) > 1:
            return RankAnswer(None, reason, "nested answers that disagree")
        best = next((a for a in answers if a.ok), answers[-1])
        return RankAnswer(best.choice, reason or best.reason, best.error)
    by_rank = _choice_from_ranks(ranks, allow_ties) if ranks is not None else None
    by_winner = _choice_from_winner(winner, allow_ties) if winner is not None else None
    if by_rank and by_winner and by_rank[0] and by_winner[0] and by_rank[0] != by_winner[0]:
        return RankAnswer(None, reason, f"'rank' {preview(ranks)} contradicts 'winner' {preview(winner)}")
    if by_rank and by_rank[0] and by_winner and by_winner[0] is None and _names_no_single_image(winner):
        return RankAnswer(None, reason, f"'winner' {preview(winner)} names no single image, so 'rank' "
                                        f"{preview(ranks)} is not a clear preference")
    choice, error = by_rank if by_rank and by_rank[0] else (by_winner or by_rank)  # type: ignore[misc]
    if choice is None and by_rank:
        error = by_rank[1]
    return RankAnswer(choice, reason, error)


def _mark(text: str, start: int, previous_end: int) -> Mark:
    """How the words just before an answer (not reaching into the previous one) present it."""
    window = text[max(previous_end, start - _MARK_WINDOW) : start]
    if _FINAL_MARK.search(window):
        return "final"
    if _EXAMPLE_MARK.search(window):
        return "example"
    if _DRAFT_MARK.search(window):
        return "draft"
    return None


def _decide(candidates: list[tuple[RankAnswer, Mark]], disagree: str) -> RankAnswer:
    """One answer out of several found in a reply, in reading order.

    The last answer marked final wins (unless a later one disagrees); otherwise examples and
    drafts followed by a plain answer are set aside, and the rest must agree.
    """
    usable = [(answer, mark) for answer, mark in candidates if answer.ok]
    if not usable:
        return candidates[-1][0]
    finals = [i for i, (_, mark) in enumerate(usable) if mark == "final"]
    if finals:
        chosen = usable[finals[-1]][0]
        if any(answer.choice != chosen.choice for answer, _ in usable[finals[-1] + 1 :]):
            return RankAnswer(None, chosen.reason, f"{disagree} (one after the final answer)")
        return chosen
    kept = [
        (answer, mark)
        for i, (answer, mark) in enumerate(usable)
        if mark is None or not any(later is None for _, later in usable[i + 1 :])
    ]
    if len({answer.choice for answer, _ in kept}) > 1:
        return RankAnswer(None, kept[-1][0].reason, disagree)
    return kept[-1][0]


def _json_candidates(text: str, allow_ties: bool) -> list[tuple[RankAnswer, Mark]]:
    found = sorted(_find_objects(text), key=lambda item: (item.start, not item.fenced))
    candidates: list[tuple[RankAnswer, Mark]] = []
    previous_end, last_start = 0, -1
    for item in found:
        if item.start == last_start or item.start < previous_end:
            continue  # the same object seen in and out of its fence, or one inside another
        candidates.append((_from_object(item.value, allow_ties), _mark(text, item.start, previous_end)))
        previous_end, last_start = item.end, item.start
    return candidates


def _text_candidates(text: str, allow_ties: bool) -> list[tuple[RankAnswer, Mark]]:
    matches = list(itertools.islice(_RANK_IN_TEXT.finditer(text), MAX_JSON_OBJECTS + 1))
    matches = matches or list(filter(None, [_BARE_ARRAY.match(text)]))
    candidates: list[tuple[RankAnswer, Mark]] = []
    previous_end = 0
    for match in matches:
        choice, error = _choice_from_ranks([_bounded_int(match.group(1)), _bounded_int(match.group(2))], allow_ties)
        candidates.append((RankAnswer(choice, None, error), _mark(text, match.start(), previous_end)))
        previous_end = match.end()
    return candidates


def parse_rank_answer(text: str | None, *, allow_ties: bool = False) -> RankAnswer:
    """Apply the pairwise output contract ``{"rank": [r1, r2], "reason": ...}`` to a reply.

    ``choice`` is ``"1"`` when the first shown image wins, ``"2"`` when the second does, and
    ``"tie"`` only when ``allow_ties``. Never raises for any text: unusable answers carry an
    ``error``. An answer with several decisions counts its last one marked final ("Final rank:
    [2, 1]"), sets aside examples and drafts followed by a plain answer, and is unusable when
    the remaining decisions disagree.
    """
    if text is None or not text.strip():
        return RankAnswer(None, None, "empty answer")
    if len(text) > MAX_PARSE_CHARS:
        return RankAnswer(None, None, f"answer too long to read ({len(text):,} characters; the limit is "
                                      f"{MAX_PARSE_CHARS:,})")
    visible = strip_thinking(text)
    if not visible.strip():
        return RankAnswer(None, None, "answer holds only unfinished reasoning")
    candidates = _json_candidates(visible, allow_ties)
    if len(candidates) > MAX_JSON_OBJECTS:
        return RankAnswer(None, None, f"more than {MAX_JSON_OBJECTS} JSON objects in one answer")
    if candidates:
        return _decide(candidates, "several JSON answers that disagree")
    candidates = _text_candidates(visible, allow_ties)
    if len(candidates) > MAX_JSON_OBJECTS:
        return RankAnswer(None, None, f"more than {MAX_JSON_OBJECTS} ranks in the text of one answer")
    if candidates:
        return _decide(candidates, "several ranks in the text that disagree")
    if _REFUSAL.search(visible):
        return RankAnswer(None, None, "the model refused or could not decide")
    return RankAnswer(None, None, "no JSON answer found")
