"""Request bodies built with pre-encoded images equal the plain JSON serialisation."""

from __future__ import annotations

import json

from arrpo.vlm import Message
from arrpo.vlm.openai_compat import encode_chat_body, to_openai_messages


def test_body_matches_plain_json(make_image):
    a, b = make_image((1, 2, 3)), make_image((200, 100, 50))
    messages = (
        Message.system("be fair"),
        Message.user("Image 1:", a, "Image 2:", b, 'quote " backslash \\ unicode é ✓ and a fake "slot"', a),
        Message.assistant("{\"rank\": [1, 2]}"),
    )
    fields = {"model": "m", "temperature": 0.0, "max_tokens": 10, "response_format": {"type": "json_object"}}
    body = json.loads(encode_chat_body(messages, **fields))
    assert body == {**fields, "messages": to_openai_messages(messages)}
    urls = [p["image_url"]["url"] for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    assert urls == [a.data_url, b.data_url, a.data_url]


def test_body_without_images():
    body = json.loads(encode_chat_body((Message.user("only text"),), model="m"))
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "only text"}]}]
