"""The response cache key covers every backend option that changes the answer."""

from __future__ import annotations

import pytest

from arrpo.testing.scripted_server import Reply
from arrpo.vlm import Message, VLMRequest, build_backend
from arrpo.vlm.openai_compat import OpenAIBackend
from arrpo.vlm.transformers_local import TransformersBackend
from arrpo.vlm.vllm_offline import VLLMBackend


def thinking(enabled: bool) -> dict:
    return {"chat_template_kwargs": {"enable_thinking": enabled}}


async def test_extra_body_and_json_mode_change_the_cached_answer(scripted_server, make_image, tmp_path):
    """A run with thinking switched on must not be answered from a run with it off."""
    server = scripted_server(lambda chat: Reply(text=f'{{"rank": [1, 2], "reason": "{chat.body.get("chat_template_kwargs")}"}}'))
    request = VLMRequest(messages=(Message.user(make_image(), "which?"),), json_schema={"type": "object"})
    cache = tmp_path / "cache.sqlite"
    answers = []
    for options in ({}, {"extra_body": thinking(False)}, {"extra_body": thinking(True)},
                    {"extra_body": thinking(True), "json_mode": "off"}, {"extra_body": thinking(True)}):
        backend = build_backend(server.base_url, "m", cache_path=cache, **options)
        answers.append(await backend.complete(request))
        await backend.aclose()
    assert server.requests == 4  # only the repeated last configuration is a cache hit
    assert [a.cached for a in answers] == [False, False, False, False, True]
    assert "True" in answers[2].text and "False" in answers[1].text


def test_default_options_keep_the_plain_model_id():
    assert OpenAIBackend("http://127.0.0.1:1/v1", "m").model_id == "openai:http://127.0.0.1:1/v1#m"
    assert TransformersBackend("some/model").model_id == "transformers:some/model"
    assert VLLMBackend("some/model").model_id == "vllm:some/model"


@pytest.mark.parametrize(
    ("make", "variants"),
    [
        (lambda **kw: TransformersBackend("some/model", **kw),
         [{}, {"chat_template_kwargs": {"enable_thinking": False}}, {"chat_template_kwargs": {"enable_thinking": True}}]),
        (lambda **kw: VLLMBackend("some/model", **kw),
         [{}, {"chat_template_kwargs": {"enable_thinking": False}}, {"guided_json": False}]),
    ],
)
def test_local_backend_options_change_the_model_id(make, variants):
    ids = {make(**options).model_id for options in variants}
    assert len(ids) == len(variants)
