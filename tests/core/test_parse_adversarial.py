"""Answers built to make the parser read the wrong winner: each must give the right one or none."""

from __future__ import annotations

import pytest

from arrpo.parse import parse_rank_answer

ADVERSARIAL = [
    # a rank written as prose: the digits in it are image names, not ranks
    ('{"rank": "Image 1 is worse than Image 2", "reason": "x"}', None, "does not read as two ranks"),
    ('{"ranking": "Image 1 < Image 2"}', None, "does not read as two ranks"),
    ('{"rank": "12"}', None, "does not read as two ranks"),
    ('{"rank": "2 1"}', "2", None),
    ('{"rank": "(1; 2)"}', "1", None),
    # broken JSON whose reason quotes another rank before the real one
    ('{"reason": "I first thought "rank": [1, 2] but no", "rank": [2, 1]}', None, "disagree"),
    ('Not "rank": [1, 2]. My final "rank": [2, 1]', "2", None),  # issue 11: marked final wins
    ('Not "rank": [1, 2]. My "rank": [2, 1]', None, "disagree"),
    ('Thinking aloud "rank": [2, 1] and settled: rank: [2, 1]', "2", None),
    # reasoning closed by a </think> whose opening tag was in the prompt (Qwen3 templates)
    ('Image 1 seems better, e.g. {"rank": [1, 2]}. Hmm, no.\n</think>\nFinal answer: Image 2', None, "no JSON"),
    ('Reasoning: {"rank": [1, 2]} would be wrong.\n</think>\n{"rank": [2, 1], "reason": "r"}', "2", None),
    # a winner that is not a whole image number
    ('{"winner": 1.9}', None, "unreadable winner"),
    ('{"winner": 2.0}', "2", None),
    # unicode digits read by value, rank examples inside strings ignored
    ('{"rank": ["２", "１"]}', "2", None),
    ('{"rank": [1, 2], "reason": "the {\\"rank\\": [2, 1]} format"}', "1", None),
    ('{"rank": [2, 1], "reason": "unlike {\'rank\': [1, 2]}"}', "2", None),
]


@pytest.mark.parametrize(("reply", "choice", "error"), ADVERSARIAL)
def test_adversarial_answers(reply: str, choice: str | None, error: str | None):
    answer = parse_rank_answer(reply)
    assert answer.choice == choice, (reply, answer)
    if choice is None:
        assert answer.error and error in answer.error, (reply, answer.error)
    else:
        assert answer.error is None
