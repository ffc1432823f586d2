"""The cached prompt layout through the in-process transformers backend and the Qwen3-VL-shaped chat
template of a tiny random Qwen3-VL: the system message (instructions and rubric) is rendered first,
the user turn holds the prompt line before the images, and the model answers a verdict."""

from __future__ import annotations

from arrpo.judge import PairwiseJudge
from arrpo.rubric import Rubric
from arrpo.schema import Comparison
from arrpo.vlm import wrap_backend
from arrpo.vlm.transformers_local import TransformersBackend


def _comparison(make_image) -> Comparison:
    return Comparison(task="edit", prompt="make the sky pink", image_a=make_image((250, 150, 200), size=(64, 64)),
                      image_b=make_image((9, 9, 9), size=(64, 64)), source=make_image((90, 90, 250), size=(64, 64)),
                      rubric=Rubric.from_criteria(["The sky is pink", "Nothing else changes"]))


def test_the_chat_template_puts_the_system_message_first_and_text_before_the_images(tiny_qwen3_vl_dir, make_image):
    backend = TransformersBackend(str(tiny_qwen3_vl_dir), device="cpu")
    judge = PairwiseJudge(backend, prompt_layout="cached")
    inputs = backend.prepare_inputs([judge.build_request(_comparison(make_image), "AB")])
    text = backend._processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=False)
    text = text[text.index("<|im_start|>"):]  # left padding aside
    assert text.startswith("<|im_start|>system\nYou are shown an original image")
    system_end = text.index("<|im_end|>")
    assert "Theme: The sky is pink" in text[:system_end] and "<|vision_start|>" not in text[:system_end]
    user = text[system_end:]
    assert user.startswith("<|im_end|>\n<|im_start|>user\nEditing instruction: make the sky pink")
    assert user.index("make the sky pink") < user.index("<|vision_start|>")
    assert user.count("<|vision_start|>") == 3 and text.endswith("<|im_start|>assistant\n")
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]] * 3


def test_the_judge_ends_a_cached_layout_pair_as_a_verdict(tiny_qwen3_vl_dir, make_image):
    backend = wrap_backend(TransformersBackend(str(tiny_qwen3_vl_dir), device="cpu"), cache_path=False)
    verdict = PairwiseJudge(backend, order="given", prompt_layout="cached", max_tokens=12,
                            parse_retries=1).judge_sync(_comparison(make_image))
    assert verdict.winner in ("A", "B", "tie", "invalid") and verdict.prompt_layout == "cached"
    assert verdict.answers[0].attempts in (1, 2)  # random weights: maybe re-asked, in the same layout
