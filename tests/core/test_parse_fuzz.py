"""The parser on thousands of random splices of JSON, prose, tags, digits and surrogates:
it never raises, and every answer has either a choice or an error (never both, never neither)."""

from __future__ import annotations

import random

from arrpo.parse import extract_json_objects, parse_rank_answer

PIECES = ['{', '}', '[', ']', '"', "'", '\\', ',', ':', ' ', '\n', 'rank', 'ranking', 'winner', 'reason', '1', '2',
          '3', '-', '.', 'e', '9' * 5000, 'true', 'null', 'NaN', 'Infinity', '<think>', '</think>', '```', '```json',
          'Image 1', 'Image 2', 'not', 'worse', 'final', 'draft', 'example', '\ud800', '\udc00', '\x00', '1st', '2nd',
          '>', '<', 'the first one', '"rank": [2, 1]', '{"rank": [1, 2]}', "{'rank': [2, 1]}", 'Final rank: [2, 1]',
          '\uff10', '\uff11', '\u0662', '[' * 300, ']' * 300, '\\d']


def test_random_splices_never_raise():
    rng = random.Random(11)
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40)))
        for ties in (False, True):
            answer = parse_rank_answer(text, allow_ties=ties)
            assert (answer.choice is None) == (answer.error is not None), (text, answer)
            assert answer.error is None or len(answer.error) < 1000
        assert isinstance(extract_json_objects(text), list)
