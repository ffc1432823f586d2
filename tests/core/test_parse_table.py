"""Issue 11 item 7: answers the parser misread or refused, on a table.

Negated winners must never count for the image they name; unambiguous shapes of a decision are
read; a draft followed by a final answer counts the final one; unmarked answers that disagree
stay unusable. Each row failed on the parser before this change.
"""

from __future__ import annotations

import pytest

from arrpo.parse import parse_rank_answer

# (reply, expected choice, or None with a piece of the error)
NEGATION = [
    ('{"winner": "Image 1 is worse"}', "2", None),
    ('{"winner": "not image 1"}', "2", None),
    ('{"winner": "Not Image 2."}', "1", None),
    ('{"winner": "Image 2 is clearly worse"}', "1", None),
    ('{"winner": "Image 1 is not the better one"}', "2", None),
    ('{"winner": "Edited Image 1 loses"}', "2", None),
    ('{"winner": "the first one is inferior"}', "2", None),
    # a negation that is not one of the plain forms: never a vote for the image it names
    ('{"winner": "Image 1 is not worse"}', None, "negation"),
    ('{"winner": "not sure, image 1"}', None, "negation"),
    ('{"winner": "Image 1 has fewer artifacts"}', None, "negation"),
    ('{"winner": "Image 1 isn\'t bad"}', None, "negation"),
]

SHAPES = [
    ('{"rank": {"Image 1": 2, "Image 2": 1}}', "2", None),
    ('{"rank": {"Edited Image 1": 1, "Edited Image 2": 2}}', "1", None),
    ('{"rank": {"image_1": "2", "image_2": "1"}}', "2", None),
    ('{"result": {"rank": [2, 1]}}', "2", None),
    ('{"answer": {"verdict": {"winner": "Image 1"}}, "reason": "r"}', "1", None),
    ('{"ranking": "Image 2 > Image 1"}', "2", None),
    ('{"ranking": "Edited Image 1 > Edited Image 2"}', "1", None),
    ('{"rank": "Image 2"}', "2", None),
    ('{"rank": "Edited Image 1"}', "1", None),
    ('{"rank": ["2nd", "1st"]}', "2", None),
    ('{"rank": ["1st", "2nd"]}', "1", None),
    ('{"rank": ["Image 2", "Image 1"]}', "2", None),
    ('{"winner": "The first one"}', "1", None),
    ('{"winner": "the second one"}', "2", None),
    ('{"winner": "Edited Image 2"}', "2", None),
    ('{"winner": "Image 2 > Image 1"}', "2", None),
    # still refused: the keys or the order do not say which image is which
    ('{"rank": {"Image 1": 2, "Image 3": 1}}', None, "not an image"),
    ('{"rank": {"Image 1": 2}}', None, "each of the two images"),
    ('{"ranking": "Image 1 < Image 2"}', None, "does not read as two ranks"),
    ('{"ranking": "Image 1 > Image 1"}', None, "does not read as two ranks"),
    ('{"rank": ["3rd", "1st"]}', None, "ranks must be 1 or 2"),
]

DRAFT_THEN_FINAL = [
    ("Draft rank: [1, 2]. Final rank: [2, 1].", "2", None),
    ("Initial rank: [2, 1]\nAfter a second look, rank: [1, 2]", "1", None),
    ('Draft: {"rank": [1, 2]}\nFinal answer: {"rank": [2, 1], "reason": "sharper"}', "2", None),
    (
        'The answer must look like this example:\n```json\n{"rank": [1, 2], "reason": "..."}\n```\n'
        'My answer:\n{"rank": [2, 1], "reason": "Image 2 keeps the red bicycle."}',
        "2",
        None,
    ),
    ('{"rank": [1, 2]}\nFinal: {"rank": [2, 1]}\nFor example {"rank": [1, 2]} would be wrong.', None, "after the final"),
    ('Final output: {"rank": [2, 1]}\nExample: {"rank": [1, 2]}', None, "after the final"),
    ('{"rank": [1, 2]}\nMy final output: {"rank": [2, 1]}', "2", None),
    # "the final image", "the initial image" name images, not answers: still two unmarked answers
    ('The final image is sharper: {"rank": [2, 1]}\nbut {"rank": [1, 2]}', None, "disagree"),
    ('Versus the initial image: {"rank": [1, 2]}\nso {"rank": [2, 1]}', None, "disagree"),
    # two unmarked answers that disagree stay unusable
    ('{"rank": [1, 2]}\n{"rank": [2, 1]}', None, "disagree"),
    ("rank: [1, 2] ... rank: [2, 1]", None, "disagree"),
    ('{"rank": [2, 1]}\ne.g. {"rank": [1, 2]}', None, "disagree"),
]


# issue 19: a winner text that names no single image is no preference, whatever a rank beside it says
NO_SINGLE_IMAGE = [
    ('{"winner": "Image 1 or 2"}', None, "unreadable winner"),
    ('{"winner": "both"}', None, "where ties are not allowed"),
    ('{"rank": [2, 1], "winner": "Image 1 or 2"}', None, "names no single image"),
    ('{"rank": [2, 1], "winner": "both"}', None, "names no single image"),
    ('{"rank": [1, 2], "winner": "neither"}', None, "names no single image"),
    ('{"rank": [2, 1], "winner": "Image 1 and Image 2"}', None, "names no single image"),
    ('{"ranking": "Image 2 > Image 1", "better": "both images"}', None, "names no single image"),
    # still read: the winner names one image, or says nothing about the images
    ('{"rank": [2, 1], "winner": "Image 2"}', "2", None),
    ('{"rank": [2, 1], "winner": "Image 2 > Image 1"}', "2", None),
    ('{"rank": [2, 1], "winner": ""}', "2", None),
]


@pytest.mark.parametrize(("reply", "choice", "error"), NEGATION + SHAPES + DRAFT_THEN_FINAL + NO_SINGLE_IMAGE)
def test_answer_table(reply: str, choice: str | None, error: str | None):
    answer = parse_rank_answer(reply)
    assert answer.choice == choice, (reply, answer)
    if choice is None:
        assert answer.error and error in answer.error, (reply, answer.error)
    else:
        assert answer.error is None, (reply, answer.error)


@pytest.mark.parametrize("reply", [r for r, _, _ in NEGATION])
def test_a_negated_image_is_never_its_vote(reply: str):
    named = "2" if "2" in reply or "second" in reply else "1"
    assert parse_rank_answer(reply).choice != named


def test_edit_names_and_ties():
    assert parse_rank_answer('{"winner": "tie"}', allow_ties=True).choice == "tie"
    assert parse_rank_answer('{"winner": "both"}', allow_ties=True).choice == "tie"
    assert parse_rank_answer('{"rank": [2, 1], "winner": "both"}', allow_ties=True).error.startswith("'rank'")
    assert parse_rank_answer('{"rank": {"Image 1": 1, "Image 2": 1}}', allow_ties=True).choice == "tie"
    assert parse_rank_answer('{"rank": {"Image 1": 1, "Image 2": 1}}').error.startswith("tie")
