"""The default judge family end to end without weights: a tiny random Qwen3-VL (real config,
processor, tokenizer class and template shape) behind the in-process transformers backend."""

from __future__ import annotations

import pytest

from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import Message, VLMRequest, wrap_backend
from arrpo.vlm.transformers_local import TransformersBackend


def _pair_request(make_image, size_a=(64, 64), size_b=(96, 64), text="Which image is better?") -> VLMRequest:
    return VLMRequest(
        messages=(
            Message.system("You are a strict judge."),
            Message.user("Image 1:", make_image((255, 0, 0), size=size_a), "Image 2:",
                         make_image((0, 0, 255), size=size_b), text),
        ),
        max_tokens=8,
    )


def _ids(processor, token: str) -> int:
    return processor.tokenizer.convert_tokens_to_ids(token)


def test_each_image_becomes_its_grid_of_vision_tokens(tiny_qwen3_vl_dir, make_image):
    backend = TransformersBackend(str(tiny_qwen3_vl_dir), device="cpu")
    requests = [_pair_request(make_image), _pair_request(make_image, (64, 64), (64, 64), "Rank them.")]
    inputs = backend.prepare_inputs(requests)
    processor = backend._processor
    grids = inputs["image_grid_thw"].tolist()
    # 16-px patches merged 2x2: 64x64 -> (1, 4, 4), 96x64 -> (1, 4, 6)
    assert grids == [[1, 4, 4], [1, 4, 6], [1, 4, 4], [1, 4, 4]]
    assert inputs["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grids)
    merge = processor.image_processor.merge_size ** 2
    pad, start, end = (_ids(processor, t) for t in ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>"))
    for row, row_grids in zip(inputs["input_ids"].tolist(), (grids[:2], grids[2:]), strict=True):
        assert row.count(start) == row.count(end) == 2
        assert row.count(pad) == sum(t * h * w for t, h, w in row_grids) // merge
        first = row.index(start)  # the first image's run: start, 4 pads, end
        assert row[first: first + 6] == [start, pad, pad, pad, pad, end]
    text = processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=False)
    assert "<|im_start|>system\nYou are a strict judge.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")  # padded on the left: the prompt ends the row


async def test_the_model_receives_the_vision_inputs(tiny_qwen3_vl_dir, make_image):
    backend = TransformersBackend(str(tiny_qwen3_vl_dir), device="cpu")
    backend.load()
    seen = {}
    real = backend._model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    backend._model.generate = spy
    response = await backend.complete(_pair_request(make_image))
    assert {"pixel_values", "image_grid_thw", "input_ids", "attention_mask"} <= set(seen)
    assert seen["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 6]]
    assert response.usage.prompt_tokens == int(seen["attention_mask"].sum())
    assert 1 <= response.usage.completion_tokens <= 8 and response.finish_reason in ("stop", "length")


def test_judge_ends_every_pair_as_a_verdict(tiny_qwen3_vl_dir, make_image):
    backend = wrap_backend(TransformersBackend(str(tiny_qwen3_vl_dir), device="cpu"), cache_path=False)
    judge = PairwiseJudge(backend, order="both", max_tokens=12)
    comparisons = [
        Comparison(prompt="a red bicycle", image_a=make_image((255, 0, 0), size=(64, 64)),
                   image_b=make_image((0, 0, 255), size=(96, 64)), id="t2i"),
        Comparison(task="edit", prompt="make it green", image_a=make_image((0, 255, 0), size=(64, 64)),
                   image_b=make_image((9, 9, 9), size=(64, 64)), source=make_image((200, 0, 0), size=(64, 64)),
                   id="edit"),
    ]
    verdicts = judge.judge_many_sync(comparisons)
    assert [v.id for v in verdicts] == ["t2i", "edit"]
    for verdict in verdicts:
        assert verdict.winner in ("A", "B", "tie", "invalid")
        assert len(verdict.answers) == 2
        # the model answered (random text): nothing failed on the way in
        assert all(a.raw is not None and not (a.invalid_reason or "").startswith("backend") for a in verdict.answers)
        if verdict.winner == "invalid":
            assert verdict.invalid_reason


def test_builder_uses_the_real_classes(tiny_qwen3_vl_dir):
    from transformers import AutoConfig, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_qwen3_vl_dir)
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(processor.video_processor).__name__ == "Qwen3VLVideoProcessor"
    assert type(AutoConfig.from_pretrained(tiny_qwen3_vl_dir)).__name__ == "Qwen3VLConfig"


def test_a_model_already_in_memory_answers_as_the_loaded_one(tiny_qwen3_vl_dir, make_image):
    """``TransformersBackend.from_loaded``: the same chat template, batching and ``generate`` over a
    model the caller built (no folder, no download), so greedy answers equal the loaded model's."""
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    loaded = TransformersBackend(str(tiny_qwen3_vl_dir), device="cpu")
    model = Qwen3VLForConditionalGeneration.from_pretrained(tiny_qwen3_vl_dir)
    processor = AutoProcessor.from_pretrained(tiny_qwen3_vl_dir)
    processor.tokenizer.padding_side = "right"  # the backend sets what generation needs
    in_memory = TransformersBackend.from_loaded(model, processor, name="notebook-model")
    assert processor.tokenizer.padding_side == "left" and not model.training
    assert in_memory.model_id == "transformers:notebook-model"
    request = _pair_request(make_image)
    expected = loaded.generate([request])[0]
    got = in_memory.generate([request])[0]
    assert (got.text, got.usage) == (expected.text, expected.usage)
    assert in_memory.prepare_inputs([request])["input_ids"].tolist() == loaded.prepare_inputs([request])["input_ids"].tolist()


def test_an_in_memory_processor_without_a_chat_template_is_refused(tiny_qwen3_vl_dir):
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    from arrpo.vlm.base import BackendUnavailable

    processor = AutoProcessor.from_pretrained(tiny_qwen3_vl_dir)
    processor.chat_template = None
    processor.tokenizer.chat_template = None
    model = Qwen3VLForConditionalGeneration.from_pretrained(tiny_qwen3_vl_dir)
    with pytest.raises(BackendUnavailable, match="no chat template"):
        TransformersBackend.from_loaded(model, processor)
