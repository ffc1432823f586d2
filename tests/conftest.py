"""Fixtures shared by every test package: small images, scripted VLM servers, shared data."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from arrpo.images import ImageData, load_image
from arrpo.testing.scripted_server import Handler, ScriptedVLMServer

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def solid_png(color: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> bytes:
    """PNG bytes of a one-colour image."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_image() -> Callable[..., ImageData]:
    """``make_image((r, g, b), size=(32, 32))`` → a loaded one-colour ImageData."""

    def make(color: tuple[int, int, int] = (128, 128, 128), size: tuple[int, int] = (32, 32)):
        return load_image(solid_png(color, size))

    return make


@pytest.fixture
def scripted_server() -> Iterator[Callable[[Handler], ScriptedVLMServer]]:
    """``scripted_server(handler)`` → a started ScriptedVLMServer, stopped after the test."""
    servers: list[ScriptedVLMServer] = []

    def start(handler: Handler) -> ScriptedVLMServer:
        server = ScriptedVLMServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
