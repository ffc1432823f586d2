"""Which text does a prompt ask the image to show? Extraction from T2I prompts and edit instructions.

Three sources, in this order of trust:

1. **Quoted strings**, in any common quote style: ``"…"``, ``'…'``, ``“…”``, ``‘…’``, ``„…“``,
   ``„…”``, ``‚…‘``, ``«…»``, ``»…«``, ``‹…›``, ``「…」``, ``『…』``, ``《…》``, ``＂…＂`` and
   backticks. Single quotes are told apart from apostrophes: an opening ``'``/``‘`` follows no
   letter or digit and precedes no space; a closing ``'``/``’`` is followed by no letter or digit
   (so ``don't`` and ``it's`` are not quotes, and ``'don't stop'`` is one string).
2. **Phrases** such as "that says / reads …", "titled …", "labeled …", "with the words / text
   …", "saying …", followed by unquoted text. The extent of unquoted text is a heuristic: a run
   of UPPER-CASE words, else a run of Capitalised Words (with small joining words: "Lord of the
   Rings"), else — after the unambiguous phrases only — up to six lower-case words ending before
   a word such as "in", "on", "with", "written". Verb-like phrases ("saying", "reading", "a sign
   says") take upper-case or capitalised text only, so "a girl reading a book" asks for nothing.
3. **Edits**: "replace X with Y" (also "by", "for"), "change X to Y", "change the text (from X)
   to Y", where X and Y are quoted or capitalised: Y is requested, X is recorded as the old text.

Text that normalises to nothing (only punctuation or spaces) is not a request. Everything is
bounded: only the first :data:`MAX_PROMPT_CHARS` characters of a prompt are scanned, at most
:data:`MAX_STRINGS` strings of at most :data:`MAX_STRING_CHARS` characters are kept, and
``truncated`` says when anything was cut. Quote every text you want rendered: quoting is the
reliable way; the phrase heuristics are a convenience.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from arrpo.evidence.matching import normalise
from arrpo.evidence.values import RequestedText
from arrpo.text import valid_utf8

#: Characters of a prompt that are scanned (the rest is ignored; ``truncated`` is set).
MAX_PROMPT_CHARS = 10_000
#: Most requested strings kept per prompt.
MAX_STRINGS = 16
#: Longest quoted string taken as requested text (a longer "quote" is not a text request).
MAX_STRING_CHARS = 1_000
#: Most normalised characters of requested text kept in all (bounds the matching work).
MAX_TOTAL_CHARS = 2_000
#: Most opening quote characters examined per prompt (bounds the work on hostile prompts).
MAX_QUOTE_ATTEMPTS = 2_000

#: Opening quote → the closing quotes it pairs with.
QUOTE_PAIRS: dict[str, str] = {
    '"': '"',
    "'": "'",
    "`": "`",
    "“": "”“",
    "”": "”",
    "‘": "’",
    "„": "“”",
    "‚": "‘’",
    "«": "»",
    "»": "«",
    "‹": "›",
    "「": "」",
    "『": "』",
    "《": "》",
    "＂": "＂",
}
#: Quotes that double as apostrophes (``don't``, ``don’t``, ``kids'``).
APOSTROPHES = "'’"

_EDIT_VERBS = r"replace|change|swap|switch|turn|rename|rewrite|correct|fix|update|alter|modify|edit"
_EDIT_GAP = re.compile(
    r"\s*(?:with|by|for|to|into|->|→)\s+(?:(?:the|a)\s+)?(?:(?:new\s+)?(?:text|words?|writing)\s+)?",
    re.IGNORECASE,
)
_EDIT_LEAD = re.compile(rf"\b(?:{_EDIT_VERBS})\b", re.IGNORECASE)
#: "replace SALE with", "change the text OPEN to": an unquoted old text follows (group 1: "the text").
_UNQUOTED_EDIT = re.compile(rf"\b(?:{_EDIT_VERBS})\s+(the\s+(?:text|words?)\s+)?", re.IGNORECASE)
#: "change the text (on the sign) to", "make the sign say": the unquoted new text follows.
_CHANGE_TO = re.compile(
    r"\b(?:change|edit|update|rewrite|alter|modify|set)\s+(?:the\s+|its\s+)?"
    r"(?:text|words?|writing|lettering|sign|title|label|caption|message|name|slogan|headline)\b"
    r"[^.;!?\n\"'“”«»]{0,60}?\bto\s+(?:say\s+|read\s+)?"
    r"|\bmake\s+(?:it|the\s+\w+)\s+(?:say|read|spell)\s+",
    re.IGNORECASE,
)
#: Phrases after which any unquoted text (lower-case too) is taken as requested text.
_PLAIN_TRIGGERS = re.compile(
    r"\b(?:that|which|it)\s+(?:says|reads|said|spells(?:\s+out)?)\b"
    r"|\b(?:titled|entitled|labell?ed|captioned|inscribed|spelling\s+out)\b"
    r"|\bwith\s+(?:the\s+)?(?:words?|text|caption|title|slogan|inscription|lettering|message|phrase)\b",
    re.IGNORECASE,
)
#: Verb-like phrases: only upper-case or capitalised unquoted text is taken after them.
_VERB_TRIGGERS = re.compile(
    r"\b(?:saying|reading|spelling)\b"
    r"|\b(?:sign|signs|banner|poster|label|board|card|note|plate|shirt|t-shirt|mug|cake|cover|screen|"
    r"billboard|plaque|badge|sticker|tag|logo|marquee|headline|title|text)\s+(?:says|reads)\b",
    re.IGNORECASE,
)
#: Words that end a lower-case unquoted phrase ("that says hello in red letters" → "hello").
_STOP_WORDS = frozenset((
    "in", "on", "at", "with", "written", "painted", "printed", "drawn", "carved", "engraved", "above",
    "below", "under", "over", "across", "near", "next", "beside", "by", "for", "and", "while",
    "against", "along", "inside", "outside", "behind", "from", "into", "onto", "underneath", "that",
    "which", "who", "where", "as", "is", "are", "was", "were", "has", "have",
))
#: Small words allowed inside a capitalised title ("The Lord of the Rings").
_TITLE_JOINERS = frozenset(("of", "the", "and", "a", "an", "in", "on", "at", "for", "to", "de", "la",
                            "le", "du", "von", "van", "&", "-"))
_CLAUSE_END = ".,;:!?)]}"
_MAX_PHRASE_WORDS = 12
_MAX_PLAIN_WORDS = 6


@dataclass(frozen=True)
class _Span:
    start: int  # index of the opening quote (or of the first character of unquoted text)
    end: int  # index after the closing quote (or after the text)
    text: str


def extract_requested_text(prompt: str) -> RequestedText:
    """The text that ``prompt`` (a T2I prompt or an edit instruction) asks the image to show.

    Never raises: a prompt with no requested text gives an empty :class:`RequestedText`.
    """
    text = valid_utf8(prompt if isinstance(prompt, str) else "")
    truncated = len(text) > MAX_PROMPT_CHARS
    text = text[:MAX_PROMPT_CHARS]
    quotes, quote_cut = _quoted_spans(text)
    new, old = _edit_pairs(text, quotes)
    changed_new, regions = _change_to_spans(text, quotes)
    paired = {id(s) for s in new + old}
    spans = [s for s in quotes if id(s) not in paired] + new + changed_new
    spans += _phrase_spans(text, quotes)
    # text named inside "change the sign that says X to ..." is the old text, not a request
    old += [s for s in spans if any(a <= s.start < b for a, b in regions)]
    spans = sorted((s for s in spans if not any(a <= s.start < b for a, b in regions)),
                   key=lambda s: s.start)
    strings, cut = _kept([s.text for s in spans])
    olds, old_cut = _kept([s.text for s in sorted(old, key=lambda s: s.start)])
    return RequestedText(strings=tuple(strings), old=tuple(olds),
                         truncated=truncated or quote_cut or cut or old_cut)


def _kept(texts: list[str]) -> tuple[list[str], bool]:
    """Texts without duplicates (by normalised form) or empties, at most :data:`MAX_STRINGS`
    of :data:`MAX_TOTAL_CHARS` normalised characters in all."""
    kept: list[str] = []
    seen: set[str] = set()
    total = 0
    for raw in texts:
        cleaned = " ".join(raw.split())
        key = normalise(cleaned)
        if not key or key in seen:
            continue
        if len(kept) == MAX_STRINGS or total + len(key) > MAX_TOTAL_CHARS:
            return kept, True
        seen.add(key)
        total += len(key)
        kept.append(cleaned)
    return kept, False


def _quoted_spans(text: str) -> tuple[list[_Span], bool]:
    """Every quoted string, left to right; quotes do not nest (the first closing one ends it)."""
    spans: list[_Span] = []
    attempts, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        closers = QUOTE_PAIRS.get(ch)
        if closers is None or (ch in "'‘" and not _opens_single(text, i)):
            i += 1
            continue
        attempts += 1
        if attempts > MAX_QUOTE_ATTEMPTS:
            return spans, True
        close = _find_closer(text, i + 1, closers)
        if close < 0:
            i += 1
            continue
        body = text[i + 1 : close]
        if body.strip():
            spans.append(_Span(i, close + 1, body.strip()))
        i = close + 1
    return spans, False


def _opens_single(text: str, i: int) -> bool:
    before = text[i - 1] if i > 0 else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    return not before.isalnum() and not after.isspace()


def _find_closer(text: str, start: int, closers: str) -> int:
    """Index of the closing quote for an opening quote before ``start``, or -1 (within
    :data:`MAX_STRING_CHARS`). A closing apostrophe-like quote must not be followed by a letter."""
    limit = min(len(text), start + MAX_STRING_CHARS + 1)
    best = -1
    for closer in closers:
        j = text.find(closer, start, limit)
        while j >= 0 and closer in APOSTROPHES and j + 1 < len(text) and text[j + 1].isalnum():
            j = text.find(closer, j + 1, limit)
        if j >= 0 and (best < 0 or j < best):
            best = j
    return best


def _edit_pairs(text: str, quotes: list[_Span]) -> tuple[list[_Span], list[_Span]]:
    """``(new, old)`` spans of "replace X with Y"-style instructions (quoted or capitalised)."""
    new: list[_Span] = []
    old: list[_Span] = []
    used: set[int] = set()
    for first, second in itertools.pairwise(quotes):
        if id(first) in used:
            continue
        if _EDIT_GAP.fullmatch(text, first.end, second.start) and _edit_verb_before(text, first.start):
            old.append(first)
            new.append(second)
            used.update((id(first), id(second)))
    for m in _UNQUOTED_EDIT.finditer(text):
        if _inside(m.end(), quotes) or _starts_quote(text, m.end()):
            continue
        x = _capital_phrase(text, m.end())
        if x is None or not (m.group(1) or _is_upper(x.text.split()[0])):
            continue  # "replace Dog with Cat" names objects; "replace SALE with OPEN" names text
        gap = _EDIT_GAP.match(text, x.end)
        if gap is None or gap.end() == x.end:
            continue
        y = _quote_at(quotes, gap.end()) or _capital_phrase(text, gap.end())
        if y is not None and id(y) not in used:
            old.append(x)
            new.append(y)
            used.add(id(y))
    return new, old


def _change_to_spans(text: str, quotes: list[_Span]) -> tuple[list[_Span], list[tuple[int, int]]]:
    """New text after "change the text/sign (…) to", and the regions between verb and "to"
    (text named there — "the sign that says SALE" — is the old text)."""
    new: list[_Span] = []
    regions: list[tuple[int, int]] = []
    for m in _CHANGE_TO.finditer(text):
        if _inside(m.start(), quotes):
            continue
        regions.append((m.start(), m.end()))
        start = _skip_colon(text, m.end())
        span = _quote_at(quotes, start) or _capital_phrase(text, start)
        if span is not None:
            new.append(span)
    return new, regions


def _edit_verb_before(text: str, position: int) -> bool:
    """An edit verb in the same sentence, at most 60 characters before ``position``."""
    window = text[max(0, position - 60) : position]
    window = re.split(r"[.;!?\n]", window)[-1]
    return _EDIT_LEAD.search(window) is not None


def _phrase_spans(text: str, quotes: list[_Span]) -> list[_Span]:
    """Unquoted text after a trigger phrase (quoted text after a trigger is already a quote)."""
    spans: list[_Span] = []
    for pattern, lower_ok in ((_PLAIN_TRIGGERS, True), (_VERB_TRIGGERS, False)):
        for m in pattern.finditer(text):
            start = _skip_colon(text, m.end())
            if _inside(m.start(), quotes) or _starts_quote(text, start):
                continue
            span = _capital_phrase(text, start)
            if span is None and lower_ok:
                span = _plain_phrase(text, start)
            if span is not None:
                spans.append(span)
    return spans


def _skip_colon(text: str, i: int) -> int:
    while i < len(text) and (text[i].isspace() or text[i] in ":-–—"):
        i += 1
    return i


def _starts_quote(text: str, i: int) -> bool:
    i = _skip_colon(text, i)
    return i < len(text) and text[i] in QUOTE_PAIRS


def _inside(position: int, quotes: list[_Span]) -> bool:
    return any(q.start <= position < q.end for q in quotes)


def _quote_at(quotes: list[_Span], position: int) -> _Span | None:
    return next((q for q in quotes if q.start == position), None)


_TOKEN = re.compile(r"\S+")


def _tokens(text: str, start: int, limit: int) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text, start, min(len(text), start + 400)))[:limit]


def _core(token: str) -> str:
    return token.rstrip(_CLAUSE_END + "'\"’”»")


def _is_upper(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return (bool(letters) and all(c.isupper() for c in letters)) or (not letters and any(c.isdigit() for c in word))


def _is_capitalised(word: str) -> bool:
    return bool(word) and (word[0].isupper() or word[0].isdigit())


def _capital_phrase(text: str, start: int) -> _Span | None:
    """A run of UPPER-CASE words, else of Capitalised Words (with joiners), from ``start``."""
    tokens = _tokens(text, start, _MAX_PHRASE_WORDS)
    if not tokens or tokens[0].start() != _skip_colon(text, start) or not _is_capitalised(_core(tokens[0].group())):
        return None
    first = _core(tokens[0].group())
    test = _is_upper if _is_upper(first) and len([c for c in first if c.isalpha()]) != 1 else _is_capitalised
    taken: list[re.Match[str]] = []
    for k, tok in enumerate(tokens):
        word = _core(tok.group())
        joiner = test is _is_capitalised and word.lower() in _TITLE_JOINERS and taken
        if not word or not (test(word) or (joiner and _title_goes_on(tokens, k + 1))):
            break
        taken.append(tok)
        if word != tok.group() and tok.group()[len(word)] in _CLAUSE_END:
            break
    if not taken:
        return None
    end = taken[-1].start() + len(_core(taken[-1].group()))
    return _Span(taken[0].start(), end, text[taken[0].start() : end])


def _title_goes_on(tokens: list[re.Match[str]], k: int) -> bool:
    """After a joiner ("of", "the"), the title goes on if the next non-joiner word is capitalised."""
    for tok in tokens[k:]:
        word = _core(tok.group())
        if word.lower() not in _TITLE_JOINERS:
            return _is_capitalised(word)
    return False


def _plain_phrase(text: str, start: int) -> _Span | None:
    """Up to six lower-case words from ``start``, ending before a stop word or punctuation."""
    taken: list[re.Match[str]] = []
    for tok in _tokens(text, start, _MAX_PLAIN_WORDS):
        word = _core(tok.group())
        if not word or word.lower() in _STOP_WORDS or (not taken and word.lower() in ("a", "an", "the")):
            break
        taken.append(tok)
        if word != tok.group():
            break
    if not taken:
        return None
    end = taken[-1].start() + len(_core(taken[-1].group()))
    return _Span(taken[0].start(), end, text[taken[0].start() : end])
