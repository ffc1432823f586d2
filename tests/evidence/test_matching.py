"""Matching: the normalisation policy, the edit distance (against a plain reference), word hits,
CJK per character, several strings against several lines."""

from __future__ import annotations

import random

import pytest

from arrpo.evidence.matching import (
    MAX_READ_CHARS,
    ReadText,
    best_span,
    match_candidate,
    match_string,
    normalise,
    words,
)


def reference_semi_global(needle: str, hay: str, boundaries: set[int] | None = None) -> int:
    """Fewest edits turning ``needle`` into some substring of ``hay``, plus one for each end of
    the substring inside a word: brute force over substrings."""
    cuts = set(range(len(hay) + 1)) if boundaries is None else boundaries
    def lev(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    return min(lev(needle, hay[i:j]) + (i not in cuts) + (j not in cuts)
               for i in range(len(hay) + 1) for j in range(i, len(hay) + 1))


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("OPEN LATE", "openlate"),
        ("Open  late!", "openlate"),
        ("ＯＰＥＮ", "open"),  # full-width letters (NFKC)
        ("ﬁne", "fine"),  # ligature
        ("don’t—stop…", "dontstop"),  # punctuation dropped
        ("$5 & 10%", "$5&10%"),  # symbols kept
        ("Straße", "strasse"),  # case folding
        ("a\u200bb\u202ec", "abc"),  # zero-width and bidi controls dropped
        ("生日 快乐", "生日快乐"),
    ],
)
def test_normalisation_policy(raw: str, normalised: str) -> None:
    assert normalise(raw) == normalised


def test_distance_equals_a_brute_force_reference() -> None:
    rng = random.Random(7)
    for _ in range(400):
        needle = "".join(rng.choice("abcd") for _ in range(rng.randrange(1, 7)))
        read_words = ["".join(rng.choice("abcd") for _ in range(rng.randrange(1, 4)))
                      for _ in range(rng.randrange(0, 4))]
        read = ReadText.of([" ".join(read_words)])
        cuts = {int(i) for i in read.boundary.nonzero()[0]}
        distance, start, end = best_span(needle, read)
        assert distance == reference_semi_global(needle, read.text, cuts), (needle, read_words)
        # the span found costs what it says
        cost = reference_semi_global(needle, read.text[start:end], {0, end - start})
        assert cost + (start not in cuts) + (end not in cuts) == distance


@pytest.mark.parametrize(
    ("read", "distance"),
    [("OPEN LATE", 0), ("OPENLATE", 0), ("OPEN LATF", 1), ("OPN LATE", 1), ("OEPN LATE", 2),
     ("OPEN LLATE", 1), ("OPEN LATEE", 1), ("XOPEN LATE", 1), ("welcome! open late, every day", 0),
     ("", 8)],
)
def test_one_typo_costs_edits_and_other_words_cost_nothing(read: str, distance: int) -> None:
    match = match_string("OPEN LATE", ReadText.of([read]))
    assert match.distance == distance
    assert match.score == pytest.approx(1 - min(distance, 8) / 8)


def test_word_hits_and_missing_words_as_written() -> None:
    match = match_string("Happy Birthday, Sarah!", ReadText.of(["HAPPY BIRTHDAY SARA"]))
    assert (match.words_found, match.words_total) == (2, 3)
    assert match.missing_words == ["Sarah"]


def test_cjk_is_compared_per_character() -> None:
    assert words("生日快乐 Sarah") == [("生", "生"), ("日", "日"), ("快", "快"), ("乐", "乐"), ("Sarah", "sarah")]
    match = match_string("生日快乐", ReadText.of(["生日快东"]))
    assert (match.distance, match.words_found, match.words_total) == (1, 3, 4)
    assert match.score == pytest.approx(0.75)


def test_a_string_may_span_lines_and_strings_are_pooled() -> None:
    lines = ["HAPPY", "BIRTHDAY", "SARAH", "EXIT"]  # wrapped over lines, plus unrelated text
    match = match_candidate(["Happy Birthday", "Sarah"], lines)
    assert match.score == 1.0 and all(s.distance == 0 for s in match.strings)
    typo = match_candidate(["Happy Birthday", "Sarah"], ["HAPPY", "BIRTHDAY", "SARA"])
    # pooled: one edit over 13 + 5 requested characters
    assert typo.score == pytest.approx(1 - 1 / 18)


def test_old_text_of_an_edit_is_measured_too() -> None:
    kept_old = match_candidate(["OPEN"], ["SALE"], old=["SALE"])
    replaced = match_candidate(["OPEN"], ["OPEN"], old=["SALE"])
    assert kept_old.old_score == 1.0 and replaced.old_score < 0.5
    assert match_candidate(["OPEN"], ["OPEN"]).old_score is None


def test_huge_reads_and_requests_are_bounded() -> None:
    text = ReadText.of(["x" * 50_000, "y"])
    assert len(text.text) == MAX_READ_CHARS and len(text.boundary) == MAX_READ_CHARS + 1
    match = match_string("y" * 5_000, text)  # cut to MAX_REQUESTED_CHARS, then matched
    assert match.score == 0.0 and match.length == 1_000
