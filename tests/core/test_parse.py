"""The answer parser on a corpus of well-formed, malformed and adversarial model replies."""

from __future__ import annotations

import pytest

from arrpo.parse import extract_json, parse_rank_answer

# (reply, expected choice or None, substring of the error when None)
CORPUS = [
    ('{"rank": [1, 2], "reason": "sharper"}', "1", None),
    ('{"rank": [2, 1], "reason": "better colours"}', "2", None),
    ('```json\n{"rank": [2, 1], "reason": "x"}\n```', "2", None),
    ('```\n{"rank": [1, 2]}\n```', "1", None),
    ('Here is my evaluation:\n{"rank": [1, 2], "reason": "ok"}\nHope this helps.', "1", None),
    ("{'rank': [2, 1], 'reason': 'single quotes'}", "2", None),
    ('{"rank": [1, 2], "reason": "trailing comma",}', "1", None),
    ('{"rank": ["2", "1"], "reason": "strings"}', "2", None),
    ('{"rank": "[1, 2]", "reason": "stringified"}', "1", None),
    ('{"Rank": [2, 1], "Reason": "capitalised"}', "2", None),
    ('{"ranking": [1, 2]}', "1", None),
    ('{"rank": [1.0, 2.0]}', "1", None),
    ('{"winner": "Image 2", "reason": "r"}', "2", None),
    ('{"winner": "Image 1"}', "1", None),
    ('{"better_image": 2}', "2", None),
    ('{"winner": "first"}', "1", None),
    ('<think>Image 1 looks off... maybe [2, 1]</think>{"rank": [1, 2], "reason": "final"}', "1", None),
    ('{"rank": [2, 1], "reason": "Image 1 has {weird} braces and \\"quotes\\""}', "2", None),
    ('{"rank": [2, 1], "reason": "truncated because the model ran out of tok', "2", None),
    ("[2, 1]", "2", None),
    ('Example: {"rank": [r1, r2]}\nAnswer: {"rank": [2, 1], "reason": "z"}', "2", None),
    ('{"rank": [1, 2], "winner": "Image 1", "reason": "consistent"}', "1", None),
    ('{"result": {"rank": [1, 2]}}', "1", None),  # issue 11: a decision one level down is read
    ('{"result": {"rank": [1, 2]}, "check": {"rank": [2, 1]}}', None, "disagree"),
    ("", None, "empty"),
    ("   \n\t ", None, "empty"),
    ("<think>still thinking about which is better", None, "unfinished reasoning"),
    ("I'm sorry, but I can't help with comparing these images.", None, "refused"),
    ("Image 1 is clearly better.", None, "no JSON"),
    ('{"rank": [1, 1], "reason": "both equally good"}', None, "ties are not allowed"),
    ('{"rank": [2, 2]}', None, "ties are not allowed"),
    ('{"rank": [1, 2, 3]}', None, "expected 2 ranks, got 3"),
    ('{"rank": [1]}', None, "expected 2 ranks, got 1"),
    ('{"rank": []}', None, "expected 2 ranks, got 0"),
    ('{"rank": [0, 1]}', None, "ranks must be 1 or 2"),
    ('{"rank": [1, 3]}', None, "ranks must be 1 or 2"),
    ('{"rank": [-1, 2]}', None, "ranks must be 1 or 2"),
    ('{"rank": ["first", "second"]}', None, "not integers"),
    ('{"rank": [true, false]}', None, "not integers"),
    ('{"rank": null, "reason": "cannot decide"}', None, "no 'rank'"),
    ('{"rank": 1}', None, "not a list"),
    ('{"winner": "tie"}', None, "ties are not allowed"),
    ('{"winner": "Image 3"}', None, "unreadable winner"),
    ('{"winner": "Image 1 or Image 2"}', None, "unreadable winner"),
    ('{"rank": [1, 2], "winner": "Image 2"}', None, "contradicts"),
    ('{"rank": [1, 2]} and on reflection {"rank": [2, 1]}', None, "disagree"),
    ('{"reason": "no decision at all"}', None, "no 'rank'"),
    ("rank: maybe", None, "no JSON"),
    ('["rank", 1, 2]', None, "no JSON"),
    ("{not json at all}", None, "no JSON"),
]


def test_corpus_is_large_enough():
    malformed = [case for case in CORPUS if case[1] is None or not case[0].lstrip().startswith("{")]
    assert len(malformed) >= 30


@pytest.mark.parametrize(("reply", "choice", "error"), CORPUS)
def test_corpus(reply: str, choice: str | None, error: str | None):
    answer = parse_rank_answer(reply)
    assert answer.choice == choice, (reply, answer)
    if choice is None:
        assert answer.error and error in answer.error, (reply, answer.error)
    else:
        assert answer.error is None


def test_ties_allowed_when_asked():
    assert parse_rank_answer('{"rank": [1, 1]}', allow_ties=True).choice == "tie"
    assert parse_rank_answer('{"winner": "tie"}', allow_ties=True).choice == "tie"
    assert parse_rank_answer('{"rank": [2, 1]}', allow_ties=True).choice == "2"


def test_reason_is_kept():
    assert parse_rank_answer('{"rank": [2, 1], "reason": "sharper edges"}').reason == "sharper edges"


def test_none_is_handled():
    assert parse_rank_answer(None).error == "empty answer"


def test_extract_json_takes_last_object():
    assert extract_json('{"a": 1} text {"b": 2}') == {"b": 2}
    assert extract_json("no json here") is None
    assert extract_json('```json\n{"categories": [{"theme": "x", "tips": []}],}\n```') == {
        "categories": [{"theme": "x", "tips": []}]
    }
