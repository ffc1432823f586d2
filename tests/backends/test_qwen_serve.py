"""``transformers serve`` hosting the tiny Qwen3-VL, driven by arrpo's OpenAI-compatible client and
the judge: the server's own Qwen processor turns each data-URL image into its grid of vision
tokens; the random answers must end as verdicts without crashing anything."""

from __future__ import annotations

import pytest
from tests.backends.serving import transformers_serve

from arrpo._sync import run_sync
from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import Message, VLMRequest, build_backend


@pytest.fixture(scope="module")
def served_tiny_qwen(tiny_qwen3_vl_dir):
    with transformers_serve(tiny_qwen3_vl_dir) as base_url:
        yield base_url, str(tiny_qwen3_vl_dir)


def _prompt_tokens(base_url: str, model: str, *images) -> int:
    backend = build_backend(base_url, model, cache_path=False, max_retries=0)
    request = VLMRequest(messages=(Message.user(*images, "Which is better?"),), max_tokens=4)
    return run_sync(backend.complete(request)).usage.prompt_tokens


def test_each_served_image_costs_its_grid_of_tokens(served_tiny_qwen, make_image):
    base_url, model = served_tiny_qwen
    one = _prompt_tokens(base_url, model, make_image((255, 0, 0), size=(64, 64)))
    two = _prompt_tokens(base_url, model, make_image((255, 0, 0), size=(64, 64)), make_image((0, 0, 255), size=(64, 64)))
    wide = _prompt_tokens(base_url, model, make_image((255, 0, 0), size=(64, 64)), make_image((0, 0, 255), size=(128, 64)))
    # a 64x64 image is a (1, 4, 4) grid -> 4 pads + vision start/end; 128x64 is (1, 4, 8) -> 8 pads
    assert two - one == 4 + 2
    assert wide - two == 8 - 4


def test_judge_over_served_qwen_ends_as_verdicts(served_tiny_qwen, make_image):
    base_url, model = served_tiny_qwen
    backend = build_backend(base_url, model, cache_path=False, max_retries=1, timeout=60)
    judge = PairwiseJudge(backend, order="both", max_tokens=12)
    comparisons = [
        Comparison(prompt="a red bicycle", image_a=make_image((255, 0, 0), size=(64, 64)),
                   image_b=make_image((0, 0, 255), size=(64, 64)), id="t2i"),
        Comparison(task="edit", prompt="make it green", image_a=make_image((0, 255, 0), size=(64, 64)),
                   image_b=make_image((9, 9, 9), size=(64, 64)), source=make_image((200, 0, 0), size=(64, 64)),
                   id="edit"),
    ]
    verdicts = judge.judge_many_sync(comparisons)
    assert [v.id for v in verdicts] == ["t2i", "edit"]
    for verdict in verdicts:
        assert verdict.winner in ("A", "B", "tie", "invalid")
        assert len(verdict.answers) == 2
        assert all(a.raw is not None and not (a.invalid_reason or "").startswith("backend") for a in verdict.answers)
