"""Offline vLLM backend: request construction and batching, tested without vLLM installed."""

from __future__ import annotations

import asyncio
import base64
import io
import sys
import types
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from PIL import Image

from arrpo.judge import RANK_SCHEMA, PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import BackendUnavailable, Message, VLMRequest
from arrpo.vlm.vllm_offline import (
    VLLMBackend,
    make_sampling_params,
    sampling_options,
    vllm_conversation,
)


def _decode(url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_conversation_carries_images_as_data_urls_under_the_pixel_budget(make_image):
    big = make_image((255, 0, 0), size=(200, 100))
    conversation = vllm_conversation([Message.user("Image 1:", big, "Which?")], max_pixels=50 * 50)
    parts = conversation[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]
    image = _decode(parts[1]["image_url"]["url"])
    assert image.width * image.height <= 2500 and image.width == 2 * image.height
    untouched = vllm_conversation([Message.user(big)])[0]["content"][0]["image_url"]["url"]
    assert _decode(untouched).size == (200, 100)


def test_sampling_options_carry_the_json_schema_and_seed():
    request = VLMRequest(messages=(Message.user("hi"),), temperature=0.0, max_tokens=64,
                         json_schema=RANK_SCHEMA, seed=7)
    assert sampling_options(request) == {"temperature": 0.0, "max_tokens": 64, "seed": 7, "json_schema": RANK_SCHEMA}
    assert "json_schema" not in sampling_options(request, guided_json=False)


@dataclass
class _Recorded:
    kwargs: dict = field(default_factory=dict)

    def __init__(self, **kwargs):
        self.kwargs = kwargs


def _fake_vllm(new_api: bool) -> types.SimpleNamespace:
    params = types.SimpleNamespace()
    if new_api:
        params.StructuredOutputsParams = type("StructuredOutputsParams", (_Recorded,), {})
    else:
        params.GuidedDecodingParams = type("GuidedDecodingParams", (_Recorded,), {})
    return types.SimpleNamespace(sampling_params=params, SamplingParams=type("SamplingParams", (_Recorded,), {}))


@pytest.mark.parametrize("new_api", [True, False])
def test_sampling_params_use_whichever_structured_output_api_vllm_has(new_api):
    vllm = _fake_vllm(new_api)
    built = make_sampling_params(vllm, {"temperature": 0.0, "max_tokens": 8, "json_schema": RANK_SCHEMA})
    field_name = "structured_outputs" if new_api else "guided_decoding"
    assert set(built.kwargs) == {"temperature", "max_tokens", field_name}
    assert built.kwargs[field_name].kwargs == {"json": RANK_SCHEMA}


async def test_without_vllm_the_backend_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm → ImportError, installed or not
    backend = VLLMBackend("Qwen/Qwen3-VL-8B-Instruct")
    with pytest.raises(BackendUnavailable, match=r"pip install 'arrpo\[vllm\]'"):
        await backend.complete(VLMRequest(messages=(Message.user("hi"),)))


class _FakeLLM:
    """Stands in for ``vllm.LLM``: records calls, answers a fixed ranking per conversation."""

    instances: ClassVar[list] = []

    def __init__(self, **engine_args):
        self.engine_args = engine_args
        self.calls: list = []
        _FakeLLM.instances.append(self)

    def chat(self, conversations, sampling_params, use_tqdm, chat_template_kwargs):
        self.calls.append((conversations, sampling_params, chat_template_kwargs))
        out = []
        for conversation in conversations:
            n_images = sum(p["type"] == "image_url" for m in conversation for p in m["content"])
            best = types.SimpleNamespace(text=f'{{"rank": [1, 2], "reason": "seen {n_images} images"}}',
                                         token_ids=[1, 2, 3], finish_reason="stop")
            out.append(types.SimpleNamespace(outputs=[best], prompt_token_ids=list(range(50))))
        return out


async def test_concurrent_judgements_go_out_as_one_chat_call(monkeypatch, make_image):
    fake = _fake_vllm(new_api=True)
    fake.LLM = _FakeLLM
    monkeypatch.setitem(sys.modules, "vllm", fake)
    backend = VLLMBackend("some/model", max_images=3, chat_template_kwargs={"enable_thinking": False},
                          batch_window_s=0.05)
    judge = PairwiseJudge(backend, order="both")
    comparisons = [Comparison(prompt=f"p{i}", image_a=make_image((i, 0, 0)), image_b=make_image((0, i, 0)), id=str(i))
                   for i in range(1, 4)]  # distinct images: identical ones are a tie without a call
    verdicts = await asyncio.gather(*(judge.judge(c) for c in comparisons))
    llm = _FakeLLM.instances[-1]
    assert llm.engine_args["limit_mm_per_prompt"] == {"image": 3, "video": 0}
    assert backend.batches == 1 and len(llm.calls) == 1
    conversations, params, template_kwargs = llm.calls[0]
    assert len(conversations) == len(params) == 6  # 3 comparisons x 2 orders
    assert template_kwargs == {"enable_thinking": False}
    assert all(p.kwargs["structured_outputs"].kwargs == {"json": RANK_SCHEMA} for p in params)
    # both orders rank "Image 1" first → they disagree → tie; the answer text came through
    assert [v.winner for v in verdicts] == ["tie", "tie", "tie"]
    assert verdicts[0].answers[0].reason == "seen 2 images"
    assert verdicts[0].usage.prompt_tokens == 100
