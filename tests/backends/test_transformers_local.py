"""The in-process transformers backend with a tiny random LLaVA: real processor, template, generate."""

from __future__ import annotations

import asyncio

import pytest

from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import BackendUnavailable, Message, VLMRequest, wrap_backend
from arrpo.vlm.transformers_local import TransformersBackend, chat_messages

pytest.importorskip("torch")


def _request(make_image, color, text="Which image is better?", max_tokens=12) -> VLMRequest:
    return VLMRequest(
        messages=(Message.user("Image 1:", make_image(color), "Image 2:", make_image((0, 0, 255)), text),),
        max_tokens=max_tokens,
    )


def test_chat_messages_keep_image_positions(make_image):
    message = Message.user("Image 1:", make_image(), "Image 2:", make_image((1, 2, 3)), "Judge.")
    assert chat_messages([Message.system("Be strict."), message]) == [
        {"role": "system", "content": [{"type": "text", "text": "Be strict."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Image 1:"}, {"type": "image"},
            {"type": "text", "text": "Image 2:"}, {"type": "image"},
            {"type": "text", "text": "Judge."},
        ]},
    ]


async def test_two_images_and_text_reach_generate(tiny_llava_dir, make_image):
    backend = TransformersBackend(str(tiny_llava_dir), device="cpu")
    response = await backend.complete(_request(make_image, (255, 0, 0)))
    assert response.usage.prompt_tokens > 2 * 16  # both images were expanded into patch tokens
    assert 1 <= response.usage.completion_tokens <= 12
    assert response.finish_reason in ("stop", "length")
    assert isinstance(response.text, str)
    assert backend.batches == 1
    assert backend.model_id == f"transformers:{tiny_llava_dir}"


async def test_concurrent_calls_share_a_batch_and_match_one_by_one(tiny_llava_dir, make_image):
    colours = [(255, 0, 0), (0, 255, 0), (10, 20, 30), (200, 200, 0)]
    texts = ["Which is better?", "Judge these two images against the rubric, please.", "Rank.", "x"]
    requests = [_request(make_image, c, t) for c, t in zip(colours, texts, strict=True)]

    single = TransformersBackend(str(tiny_llava_dir), device="cpu", max_batch_size=1)
    one_by_one = [await single.complete(r) for r in requests]
    assert single.batches == 4

    batched = TransformersBackend(str(tiny_llava_dir), device="cpu", max_batch_size=8, batch_window_s=0.05)
    together = await asyncio.gather(*(batched.complete(r) for r in requests))
    assert batched.batches == 1  # one padded generate call for all four
    assert [r.text for r in together] == [r.text for r in one_by_one]
    assert [r.usage for r in together] == [r.usage for r in one_by_one]


async def test_max_tokens_is_honoured_per_request_in_a_shared_batch(tiny_llava_dir, make_image):
    backend = TransformersBackend(str(tiny_llava_dir), device="cpu", batch_window_s=0.05)
    short, long = await asyncio.gather(
        backend.complete(_request(make_image, (1, 1, 1), max_tokens=3)),
        backend.complete(_request(make_image, (1, 1, 1), max_tokens=20)),
    )
    assert backend.batches == 1
    assert short.usage.completion_tokens <= 3
    if short.finish_reason == "length":
        assert long.text.startswith(short.text)


async def test_pixel_budget_downscales_before_the_processor(tiny_llava_dir, make_image, monkeypatch):
    import arrpo.vlm.transformers_local as module

    seen = []
    real = module.load_image

    def spy(source, **kwargs):
        image = real(source, **kwargs)
        seen.append((image.width, image.height))
        return image

    monkeypatch.setattr(module, "load_image", spy)
    backend = TransformersBackend(str(tiny_llava_dir), device="cpu", max_pixels=32 * 32)
    request = VLMRequest(messages=(Message.user(make_image((9, 9, 9), size=(256, 128)), "Describe."),), max_tokens=4)
    await backend.complete(request)
    assert seen and all(w * h <= 32 * 32 for w, h in seen)
    assert backend.model_id.endswith("@1024px")  # the budget is part of the cache key


def test_judge_turns_random_text_into_invalid_verdicts(tiny_llava_dir, make_image):
    backend = wrap_backend(TransformersBackend(str(tiny_llava_dir), device="cpu"), cache_path=False)
    judge = PairwiseJudge(backend, order="both", max_tokens=16)
    comparisons = [
        Comparison(prompt=f"a red bicycle {i}", image_a=make_image((255, 0, i)), image_b=make_image((0, 0, 255)), id=str(i))
        for i in range(3)
    ]
    verdicts = judge.judge_many_sync(comparisons)
    assert [v.id for v in verdicts] == ["0", "1", "2"]
    for verdict in verdicts:
        assert verdict.winner == "invalid"
        assert verdict.invalid_reason
        assert all(a.raw is not None for a in verdict.answers)  # the model did answer, unusably


async def test_missing_model_is_a_clear_unavailable_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    backend = TransformersBackend("arrpo-test/no-such-model", device="cpu")
    with pytest.raises(BackendUnavailable) as info:
        await backend.complete(VLMRequest(messages=(Message.user("hi"),)))
    message = str(info.value)
    assert "arrpo-test/no-such-model" in message
    assert "hf download arrpo-test/no-such-model" in message
    assert "--endpoint" in message
    with pytest.raises(BackendUnavailable):  # remembered: no second slow load attempt
        backend.load()


def test_unknown_dtype_is_refused(tiny_llava_dir):
    with pytest.raises(BackendUnavailable, match="unknown dtype"):
        TransformersBackend(str(tiny_llava_dir), device="cpu", dtype="float8").load()
