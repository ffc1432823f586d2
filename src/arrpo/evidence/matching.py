"""Matching requested text against what OCR read: normalisation, edit distance, word hits.

Normalisation (both sides, before any comparison):

* Unicode NFKC, so full-width letters, ligatures and compatibility forms compare as their
  plain letters (``ＯＰＥＮ`` = ``OPEN``, ``ﬁ`` = ``fi``);
* case-folded (``Open`` = ``OPEN``; ``ß`` = ``ss``): OCR reads case reliably, but prompts and
  generators treat it loosely, and a pair should not be decided on case alone;
* whitespace removed: OCR drops and inserts spaces between words (``OPEN LATE`` is often read
  ``OPENLATE``), so spaces carry no evidence;
* punctuation (Unicode category P*: ``. , ! ? ' " - ( ) / …``) and invisible format/control
  characters removed: OCR reads small punctuation unreliably. Kept: letters, digits, combining
  marks, symbols (category S*: ``$ € + = < > ©``) and the four P* signs that change what a text
  says, ``& % # @`` ("50% OFF", "R&B", "#1").

CJK text needs no special case for the distance: the distance counts code points, so each
CJK character is one unit. For the word hits, each CJK (Han, kana, Hangul) character is its own
word, since those scripts do not separate words with spaces.

Several lines, several strings. The words of the lines an image yields (each OCR box, in
reading order) are normalised and joined, without separator, into one *read text*, remembering
where each word ends. Each requested string is matched on its own against that whole read
text, by the fewest edits that turn it into some contiguous part of it (a semi-global edit
distance), where a part that begins or ends inside a read word costs one edit more for each
such end. So a string may span several boxes (text wrapped over lines) and other words in the
image cost nothing (backgrounds have text), but a letter joined to the requested text
(``Stationn``, ``XOPEN``) costs one edit like any typo; two requested strings may match
overlapping parts. A string's score is ``1 - min(1, d / n)`` for
``d`` edits and ``n`` normalised characters; an image's score pools its strings:
``1 - sum(min(d, n)) / sum(n)``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from arrpo.evidence.values import CandidateMatch, StringMatch

#: Read text longer than this (normalised characters) is cut before matching: bounds the work.
MAX_READ_CHARS = 4_000
#: Requested strings longer than this (normalised characters) are cut before matching.
MAX_REQUESTED_CHARS = 1_000

_DROPPED_CATEGORIES = ("Z", "P", "C")  # separators (spaces), punctuation, control/format/unassigned
_KEPT_PUNCTUATION = frozenset("&%#@")


def normalise(text: str) -> str:
    """``text`` as it is compared: NFKC, case-folded, without whitespace, punctuation or
    control characters (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch for ch in folded
        if ch in _KEPT_PUNCTUATION
        or (not unicodedata.category(ch).startswith(_DROPPED_CATEGORIES) and not ch.isspace())
    )


def is_cjk(ch: str) -> bool:
    """True for a Han ideograph, kana or Hangul syllable (a word on its own for word hits)."""
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3134F  # CJK extensions B–G
    )


def words(requested: str) -> list[tuple[str, str]]:
    """The words of a requested string as ``(as written, normalised)``: split on whitespace, each
    CJK character on its own; words that normalise to nothing (pure punctuation) are dropped."""
    found: list[tuple[str, str]] = []
    for token in requested.split():
        run = ""
        for ch in unicodedata.normalize("NFKC", token):
            if is_cjk(ch):
                found += [(run, normalise(run)), (ch, ch)] if run else [(ch, ch)]
                run = ""
            else:
                run += ch
        if run:
            found.append((run, normalise(run)))
    return [(_strip_punctuation(shown), key) for shown, key in found if key]


def _strip_punctuation(word: str) -> str:
    def dropped(ch: str) -> bool:
        return ch not in _KEPT_PUNCTUATION and unicodedata.category(ch).startswith("P")

    start, end = 0, len(word)
    while start < end and dropped(word[start]):
        start += 1
    while end > start and dropped(word[end - 1]):
        end -= 1
    return word[start:end]


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


@dataclass(frozen=True)
class ReadText:
    """An image's normalised read text, and where its words begin and end.

    ``text`` is every word of every line, in reading order, normalised and joined; ``boundary``
    has ``len(text) + 1`` entries, True where one word ends and the next begins (and at both ends).
    """

    text: str
    boundary: np.ndarray

    @classmethod
    def of(cls, lines: Sequence[str]) -> ReadText:
        """The read text of ``lines`` (OCR boxes), cut at :data:`MAX_READ_CHARS` characters."""
        parts = [key for line in lines for key in (normalise(word) for word in line.split()) if key]
        text = "".join(parts)[:MAX_READ_CHARS]
        boundary = np.zeros(len(text) + 1, dtype=bool)
        boundary[0] = boundary[-1] = True
        position = 0
        for part in parts:
            position += len(part)
            if position >= len(text):
                break
            boundary[position] = True
        return cls(text, boundary)


def _last_row(needle: np.ndarray, hay: np.ndarray, start_cost: np.ndarray) -> np.ndarray:
    """Last row of the edit-distance table of ``needle`` against ``hay``, where beginning the
    match at position ``k`` of ``hay`` costs ``start_cost[k]``: entry ``j`` is the fewest edits
    (plus that cost) that turn ``needle`` into ``hay[k:j]`` for the best ``k``.

    One numpy pass per needle character: substitution and deletion come from the previous row,
    insertions are a running minimum along the row (``D[j] = j + min_k<=j (C[k] - k)``).
    """
    index = np.arange(len(hay) + 1, dtype=np.int64)
    row = start_cost.astype(np.int64)
    for code in needle:
        candidate = np.empty_like(row)
        candidate[0] = row[0] + 1
        candidate[1:] = np.minimum(row[:-1] + (hay != code), row[1:] + 1)
        row = np.minimum.accumulate(candidate - index) + index
    return row


def best_span(requested: str, read: ReadText | str) -> tuple[int, int, int]:
    """``(distance, start, end)``: the fewest edits turning normalised ``requested`` into
    ``read.text[start:end]``, over every contiguous part of it, where a part that begins or
    ends inside a word costs one edit more for each such end.

    So other words cost nothing, but a letter joined to the requested text ("Stationn",
    "XOPEN") costs one edit like any typo. An empty read gives ``len(requested)``.
    """
    read = read if isinstance(read, ReadText) else ReadText.of([read])
    if not requested:
        return 0, 0, 0
    if not read.text:
        return len(requested), 0, 0
    needle, hay = _codes(requested), _codes(read.text)
    inside = (~read.boundary).astype(np.int64)  # 1 where a match would cut a word
    row = _last_row(needle, hay, inside) + inside
    end = int(np.argmin(row))
    distance = int(row[end])
    while end + 1 < len(row) and row[end + 1] == distance:  # the longest of equally good spans
        end += 1
    # The start: the reversed strings, the reversed match anchored at ``end``.
    anchored = np.arange(end + 1, dtype=np.int64)
    back = _last_row(needle[::-1], hay[:end][::-1], anchored) + inside[end::-1] + inside[end]
    length = int(np.flatnonzero(back == distance)[-1])
    return distance, end - length, end


def match_string(requested: str, read: ReadText) -> StringMatch:
    """Match one requested string (as written in the prompt) against an image's read text."""
    target = normalise(requested)[:MAX_REQUESTED_CHARS]
    distance, start, end = best_span(target, read)
    capped = min(distance, len(target))
    requested_words = words(requested)
    missing = [shown for shown, key in requested_words if key not in read.text]
    return StringMatch(
        requested=requested,
        length=len(target),
        distance=distance,
        score=1.0 - capped / len(target) if target else 1.0,
        matched=read.text[start:end],
        words_total=len(requested_words),
        words_found=len(requested_words) - len(missing),
        missing_words=missing[:16],
    )


def pooled_score(matches: Sequence[StringMatch]) -> float:
    """``1 - sum(min(d, n)) / sum(n)`` over the strings (1.0 when nothing is requested)."""
    total = sum(m.length for m in matches)
    if total == 0:
        return 1.0
    return 1.0 - sum(min(m.distance, m.length) for m in matches) / total


def match_candidate(
    requested: Sequence[str], lines: Sequence[str], old: Sequence[str] = ()
) -> CandidateMatch:
    """An image's match to every requested string (and, for edits, to the old text)."""
    text = ReadText.of(lines)
    strings = [match_string(r, text) for r in requested]
    old_score = pooled_score([match_string(o, text) for o in old]) if old else None
    return CandidateMatch(score=pooled_score(strings), strings=strings, old_score=old_score)
