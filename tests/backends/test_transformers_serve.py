"""The real third-party server: ``transformers serve`` hosting the tiny LLaVA, driven by arrpo's
OpenAI-compatible client and the judge. Its answers are random text, so every verdict must end
``invalid`` with a reason — and nothing may crash."""

from __future__ import annotations

import pytest
from tests.backends.serving import transformers_serve

from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import Message, VLMRequest, build_backend


@pytest.fixture(scope="module")
def served_tiny_llava(tiny_llava_dir):
    with transformers_serve(tiny_llava_dir) as base_url:
        yield base_url, str(tiny_llava_dir)


def test_two_images_and_text_reach_the_served_model(served_tiny_llava, make_image):
    base_url, model = served_tiny_llava
    backend = build_backend(base_url, model, cache_path=False, max_retries=0)
    request = VLMRequest(
        messages=(Message.user("Image 1:", make_image((255, 0, 0)), "Image 2:", make_image((0, 0, 255)), "Which?"),),
        max_tokens=8,
    )
    from arrpo._sync import run_sync

    response = run_sync(backend.complete(request))
    assert isinstance(response.text, str)
    assert response.usage.prompt_tokens > 2 * 16  # both images became patch tokens on the server


def test_judge_over_transformers_serve_ends_invalid_without_crashing(served_tiny_llava, make_image):
    base_url, model = served_tiny_llava
    backend = build_backend(base_url, model, cache_path=False, max_retries=1, timeout=60)
    judge = PairwiseJudge(backend, order="both", max_tokens=16)
    comparisons = [
        Comparison(prompt="a red bicycle", image_a=make_image((255, 0, 0)), image_b=make_image((0, 0, 255)), id="t2i"),
        Comparison(task="edit", prompt="make it green", image_a=make_image((0, 255, 0)),
                   image_b=make_image((9, 9, 9)), source=make_image((200, 0, 0)), id="edit"),
    ]
    verdicts = judge.judge_many_sync(comparisons)
    assert [v.id for v in verdicts] == ["t2i", "edit"]
    for verdict in verdicts:
        assert verdict.winner == "invalid"
        assert verdict.invalid_reason
        assert len(verdict.answers) == 2
        assert all(a.raw is not None and not (a.invalid_reason or "").startswith("backend") for a in verdict.answers)
