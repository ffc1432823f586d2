"""Which text a prompt asks for: quotes in every style, phrases, edits, and hostile prompts."""

from __future__ import annotations

import time

import pytest

from arrpo.evidence import extract_requested_text
from arrpo.evidence.requested import MAX_PROMPT_CHARS, MAX_STRINGS, MAX_TOTAL_CHARS

CASES = [
    # quotes, every style
    ('A neon sign that says "OPEN LATE" above a diner', ["OPEN LATE"]),
    ("a chalkboard reading 'don't stop' in a kid's room", ["don't stop"]),
    ("it's a poster with ‘Summer Fest’ and “JULY 4”", ["Summer Fest", "JULY 4"]),
    ("un panneau «Boulangerie», ein Schild „Bäckerei“ and »Café«", ["Boulangerie", "Bäckerei", "Café"]),
    ("a lantern with 「東京」, a scroll with 『中文』 and a book 《三体》", ["東京", "中文", "三体"]),
    ("a terminal showing `pip install arrpo`", ["pip install arrpo"]),
    ("a mug with ＂ＢＥＳＴ＂ on it", ["ＢＥＳＴ"]),
    ("the kids' toys and a sign 'HELLO'", ["HELLO"]),
    ('A T-shirt that reads: "I <3 NY"', ["I <3 NY"]),
    ('a mug with "BEST DAD" and "best dad" again', ["BEST DAD"]),  # duplicates by normalised form
    # phrases without quotes
    ("a sign that says OPEN LATE in red letters", ["OPEN LATE"]),
    ("a book titled The Lord of the Rings on a table", ["The Lord of the Rings"]),
    ("a cake with the words happy birthday written in icing", ["happy birthday"]),
    ("a sign reading Welcome Home", ["Welcome Home"]),
    ("a storefront labeled BAKERY, at dawn", ["BAKERY"]),
    ("make the banner say GRAND OPENING", ["GRAND OPENING"]),
    # no requested text
    ("a girl reading a book", []),
    ("a man saying goodbye", []),
    ("a cozy cabin in the woods at night", []),
    ('a sign that says "!!!"', []),
    ("Replace the dog with a cat", []),
    ("Replace Dog with Cat", []),
]

EDITS = [
    ('Replace "SALE" with "OPEN"', ["OPEN"], ["SALE"]),
    ("replace SALE with OPEN on the sign", ["OPEN"], ["SALE"]),
    ('Change the word "Caffe" to "Cafe"', ["Cafe"], ["Caffe"]),
    ("change the sign that says SALE to say OPEN", ["OPEN"], ["SALE"]),
    ("Change the text to HELLO", ["HELLO"], []),
    ('swap "Mon" for "Tue" and add a sign "CLOSED"', ["Tue", "CLOSED"], ["Mon"]),
]


@pytest.mark.parametrize(("prompt", "expected"), CASES)
def test_requested_text(prompt: str, expected: list[str]) -> None:
    found = extract_requested_text(prompt)
    assert list(found.strings) == expected
    assert found.asks_for_text is bool(expected)
    assert not found.truncated


@pytest.mark.parametrize(("prompt", "new", "old"), EDITS)
def test_edit_instructions_name_new_and_old_text(prompt: str, new: list[str], old: list[str]) -> None:
    found = extract_requested_text(prompt)
    assert list(found.strings) == new
    assert list(found.old) == old


def test_several_strings_keep_prompt_order() -> None:
    found = extract_requested_text('a poster: title "SUMMER FEST", date "JULY 4", and a sign that says ENTRY FREE')
    assert found.strings == ("SUMMER FEST", "JULY 4", "ENTRY FREE")


@pytest.mark.parametrize(
    "hostile",
    [
        "'a" * 500_000,  # a million apostrophe candidates that never close
        '"' * 1_000_000,  # a million empty quotes
        "that says " * 100_000,
        "“" * 100_000 + "”",
        "x" * 5_000_000,
    ],
)
def test_hostile_prompts_are_bounded(hostile: str) -> None:
    started = time.perf_counter()
    found = extract_requested_text(hostile)
    assert found.truncated
    assert len(found.strings) <= MAX_STRINGS
    assert time.perf_counter() - started < 30  # a guard against a hang, not a speed claim


def test_surrogates_and_non_strings_never_raise() -> None:
    found = extract_requested_text('\ud800 a sign that says "\ud83dHI\udc00" \udfff')
    assert len(found.strings) == 1 and "HI" in found.strings[0]
    found.model_dump_json()  # every kept string is encodable
    assert not extract_requested_text(None).asks_for_text  # type: ignore[arg-type]


def test_many_strings_are_capped_and_marked() -> None:
    prompt = " ".join(f'"WORD{i}"' for i in range(40))
    found = extract_requested_text(prompt)
    assert len(found.strings) == MAX_STRINGS and found.truncated


def test_text_past_the_scanned_prefix_is_ignored() -> None:
    found = extract_requested_text("x" * MAX_PROMPT_CHARS + ' "LATE"')
    assert not found.asks_for_text and found.truncated


def test_long_quotes_are_bounded_in_all() -> None:
    prompt = " ".join(f'"{chr(65 + i) * 900}"' for i in range(5))  # 4,500 characters of quotes
    found = extract_requested_text(prompt)
    assert sum(len(s) for s in found.strings) <= MAX_TOTAL_CHARS and found.truncated


def test_real_captions_without_text_ask_for_none(shared_data) -> None:
    """The 200 MJ-Bench captions and the ImageReward prompt describe scenes, not text: no OCR."""
    import json

    captions = [row["caption"] for name in ("human/captions_human.json", "objects_indoor/captions_objects.json")
                for row in json.loads((shared_data / "mjbench-artifacts" / name).read_text())]
    captions.append(json.loads((shared_data / "imagereward-example" / "labels.json").read_text())["prompt"])
    assert len(captions) > 100
    assert [c for c in captions if extract_requested_text(c).asks_for_text] == []
