"""Helpers for the reward-service tests: tiny images and a scripted judge that prefers the brighter image."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from arrpo.testing.scripted_server import ChatRequest, Handler, Reply

TOKEN = "test-token-0123456789abcdef"


def png_bytes(gray: int, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (gray, gray, gray)).save(buffer, format="PNG")
    return buffer.getvalue()


def b64_png(gray: int, size: tuple[int, int] = (8, 8)) -> str:
    return base64.b64encode(png_bytes(gray, size)).decode("ascii")


def brightness(image: Image.Image) -> int:
    return image.convert("L").getpixel((0, 0))


def brighter_wins(request: ChatRequest, delay: float = 0.0) -> Reply:
    """Rank the brighter of the two candidates (the last two images) first."""
    first, second = request.images()[-2:]
    rank = [1, 2] if brightness(first) >= brightness(second) else [2, 1]
    return Reply(text=json.dumps({"rank": rank, "reason": "the brighter image wins"}), delay=delay)


def slow_brighter_wins(delay: float) -> Handler:
    return lambda request: brighter_wins(request, delay)
