"""How GroupScorer forms groups from one call: by prompt (and source image), or fixed chunks."""

from __future__ import annotations

import pytest

from arrpo.integrations.groups import GroupScorer, RewardGroupError
from tests.serve.helpers import png_bytes


def test_groups_by_prompt_in_first_appearance_order(service):
    out = GroupScorer(service.url, on_failure="mask").score_batch(
        [png_bytes(g) for g in (10, 20, 30, 40, 50)], ["a", "b", "a", "c", "b"])
    assert sorted(out.groups) == [[0, 2], [1, 4], [3]]
    assert out.unjudged == [3] and out.rewards == pytest.approx([-0.1, -0.1, 1.0, 0.0, 1.0])


def test_one_prompt_over_two_source_images_is_two_groups(service):
    sources = [png_bytes(1), png_bytes(2), png_bytes(1), png_bytes(2)]
    out = GroupScorer(service.url).score_batch([png_bytes(g) for g in (10, 20, 30, 40)], ["p"] * 4, sources)
    assert sorted(out.groups) == [[0, 2], [1, 3]]


def test_fixed_chunks_must_each_hold_one_prompt_and_source(service):
    scorer = GroupScorer(service.url, group_size=2)
    out = scorer.score_batch([png_bytes(g) for g in (10, 20, 30, 40)], ["a"] * 4)
    assert out.groups == [[0, 1], [2, 3]]
    with pytest.raises(RewardGroupError, match="not a multiple"):
        scorer.score_batch([png_bytes(g) for g in (10, 20, 30)], ["a"] * 3)
    with pytest.raises(RewardGroupError, match="do not share one prompt and source"):
        scorer.score_batch([png_bytes(g) for g in (10, 20, 30, 40)], ["p"] * 4,
                           [png_bytes(1), png_bytes(2), png_bytes(1), png_bytes(1)])
