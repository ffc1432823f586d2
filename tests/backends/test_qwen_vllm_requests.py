"""The offline vLLM backend's requests against the tiny Qwen3-VL's own processor and chat template
(vLLM itself is not needed): what ``LLM.chat`` receives must render to one vision run per image,
and the images it carries must become the grids the model expects."""

from __future__ import annotations

import base64
import io

from PIL import Image

from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import Message, VLMRequest
from arrpo.vlm.vllm_offline import VLLMBackend, vllm_conversation


def _images_of(conversation: list[dict]) -> list[Image.Image]:
    urls = [p["image_url"]["url"] for m in conversation if isinstance(m["content"], list)
            for p in m["content"] if p["type"] == "image_url"]
    return [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).convert("RGB") for u in urls]


def _as_placeholders(conversation: list[dict]) -> list[dict]:
    """What vLLM hands a content-list chat template: each image part becomes ``{"type": "image"}``."""
    return [
        {**m, "content": [{"type": "image"} if p["type"] == "image_url" else p for p in m["content"]]}
        if isinstance(m["content"], list) else m
        for m in conversation
    ]


def _processor(model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


def test_conversation_renders_one_vision_run_per_image(tiny_qwen3_vl_dir, make_image):
    processor = _processor(tiny_qwen3_vl_dir)
    messages = [
        Message.system("You are a strict judge."),
        Message.user("Source:", make_image((200, 0, 0), size=(64, 64)), "Image 1:",
                     make_image((0, 255, 0), size=(64, 64)), "Image 2:", make_image((9, 9, 9), size=(256, 128)),
                     "Which edit follows the instruction?"),
    ]
    conversation = vllm_conversation(messages, max_pixels=128 * 64)
    raw = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    placeholders = processor.apply_chat_template(_as_placeholders(conversation), add_generation_prompt=True,
                                                 tokenize=False)
    assert raw == placeholders  # the template reads OpenAI image parts and vLLM's placeholders alike
    assert raw.startswith("<|im_start|>system\nYou are a strict judge.<|im_end|>\n<|im_start|>user\nSource:")
    assert raw.count("<|vision_start|><|image_pad|><|vision_end|>") == 3
    assert raw.endswith("<|im_start|>assistant\n")

    images = _images_of(conversation)
    assert [im.size for im in images] == [(64, 64), (64, 64), (128, 64)]  # the pixel budget was applied
    batch = processor(text=[raw], images=[images], return_tensors="pt")
    grids = batch["image_grid_thw"].tolist()
    assert grids == [[1, 4, 4], [1, 4, 4], [1, 4, 8]]
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert batch["input_ids"][0].tolist().count(pad) == sum(t * h * w for t, h, w in grids) // 4


async def test_judge_requests_through_the_backend_render_with_the_template(tiny_qwen3_vl_dir, make_image, monkeypatch):
    """Every conversation the backend passes to ``LLM.chat`` for a judged pair renders with the real
    template; a stand-in engine renders them and answers a fixed ranking."""
    import sys
    import types

    processor = _processor(tiny_qwen3_vl_dir)
    rendered: list[tuple[str, list]] = []

    class RenderingLLM:
        def __init__(self, **engine_args):
            self.engine_args = engine_args

        def chat(self, conversations, sampling_params, use_tqdm, chat_template_kwargs):
            out = []
            for conversation in conversations:
                text = processor.apply_chat_template(_as_placeholders(conversation), add_generation_prompt=True,
                                                     tokenize=False, **(chat_template_kwargs or {}))
                images = _images_of(conversation)
                ids = processor(text=[text], images=[images], return_tensors="pt")["input_ids"][0]
                rendered.append((text, images))
                best = types.SimpleNamespace(text='{"rank": [2, 1], "reason": "fewer artefacts"}',
                                             token_ids=[1, 2], finish_reason="stop")
                out.append(types.SimpleNamespace(outputs=[best], prompt_token_ids=ids.tolist()))
            return out

    fake = types.SimpleNamespace(
        LLM=RenderingLLM, SamplingParams=lambda **kw: kw,
        sampling_params=types.SimpleNamespace(StructuredOutputsParams=lambda **kw: kw),
    )
    monkeypatch.setitem(sys.modules, "vllm", fake)
    backend = VLLMBackend(str(tiny_qwen3_vl_dir), max_pixels=64 * 64)
    judge = PairwiseJudge(backend, order="both")
    verdict = await judge.judge(Comparison(
        task="edit", prompt="make it green", image_a=make_image((0, 255, 0), size=(64, 64)),
        image_b=make_image((9, 9, 9), size=(128, 128)), source=make_image((200, 0, 0), size=(64, 64)),
    ))
    assert len(rendered) == 2  # both orders
    for text, images in rendered:
        assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == len(images) == 3
        assert all(w * h <= 64 * 64 for w, h in (im.size for im in images))
        assert "make it green" in text
    assert verdict.winner == "tie"  # both orders ranked "Image 2" first: they disagree
    assert verdict.usage.prompt_tokens > 2 * 3 * 4


def test_engine_reserves_no_video_memory():
    backend = VLLMBackend("Qwen/Qwen3-VL-2B-Instruct", max_images=3)
    assert backend.engine_args["limit_mm_per_prompt"] == {"image": 3, "video": 0}


def test_requests_keep_text_order_and_roles(make_image):
    request = VLMRequest(messages=(Message.system("sys"), Message.user("a", make_image(), "b")))
    conversation = vllm_conversation(request.messages)
    assert conversation[0] == {"role": "system", "content": "sys"}
    assert [p["type"] for p in conversation[1]["content"]] == ["text", "image_url", "text"]
