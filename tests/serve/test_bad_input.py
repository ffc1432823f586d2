"""Every kind of bad request gets the right 4xx status and a clear JSON message, and the service
stays healthy after each."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib

import httpx
import pytest
from PIL import Image

from arrpo.server import ServerThread, ServiceConfig, create_app
from arrpo.testing.scripted_server import ScriptedVLMServer
from arrpo.vlm import build_backend
from tests.serve.helpers import b64_png, brighter_wins

MAX_BODY = 256 * 1024
MAX_PIXELS = 200 * 200


@pytest.fixture(scope="module")
def service():
    with ScriptedVLMServer(brighter_wins) as vlm:
        backend = build_backend(vlm.base_url, "scripted", max_retries=0, cache_path=False)
        config = ServiceConfig(max_body_bytes=MAX_BODY, max_image_pixels=MAX_PIXELS, max_images=4)
        app = create_app(backend, config)
        with ServerThread(app) as thread:
            yield thread


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def noise_png(size: int) -> bytes:
    rng = random.Random(0)
    image = Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes that claim 10 gigapixels: only the header is ever read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b"")


GOOD = {"prompt": "a cat", "image_a": b64_png(10), "image_b": b64_png(200)}


def compare_with(**fields) -> dict:
    return {**GOOD, **fields}


# (name, method kwargs for httpx.request, path, expected status, expected code, message fragment)
CASES = [
    ("malformed json", {"content": b'{"prompt": "a cat", "image_a": ', "headers": {"content-type": "application/json"}},
     "/v1/compare", 400, "malformed_json", "not valid JSON"),
    # bodies that decode but that Python's JSON parser refuses: each is malformed JSON, named as such
    ("json nested 50,000 deep", {"content": b'{"prompt": "p", "image_a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                                 "headers": {"content-type": "application/json"}},
     "/v1/compare", 400, "malformed_json", "nesting"),
    ("json 5,000-digit integer", {"content": b'{"prompt": "p", "win": ' + b"9" * 5000 + b"}",
                                  "headers": {"content-type": "application/json"}},
     "/v1/group_rewards", 400, "malformed_json", "digits"),
    ("json invalid utf-8", {"content": b'{"prompt": "a\xff\xfe cat"}', "headers": {"content-type": "application/json"}},
     "/v1/compare", 400, "malformed_json", "UTF-8"),
    ("json array body", {"json": [1, 2, 3]}, "/v1/compare", 422, "invalid_request", "valid dictionary"),
    ("missing fields", {"json": {"prompt": "a cat"}}, "/v1/compare", 422, "invalid_request", "image_a: field required"),
    ("wrong types", {"json": compare_with(prompt=5, image_b=[1, 2])}, "/v1/compare", 422, "invalid_request",
     "prompt: Input should be a valid string"),
    ("empty prompt", {"json": compare_with(prompt="")}, "/v1/compare", 422, "invalid_request", "prompt:"),
    ("unknown option", {"json": compare_with(rubric_file="/srv/rubric.json")}, "/v1/compare", 422,
     "invalid_request", "rubric_file: unknown field"),
    ("bad enum", {"json": compare_with(order="sideways")}, "/v1/compare", 422, "invalid_request", "order:"),
    ("bad base64 chars", {"json": compare_with(image_a="not base64 at all!")}, "/v1/compare", 422, "bad_base64",
     "image_a: not valid base64"),
    ("bad base64 padding", {"json": compare_with(image_b="abcde")}, "/v1/compare", 422, "bad_base64",
     "image_b: not valid base64"),
    ("non-image bytes", {"json": compare_with(image_a=b64(b"just some text, not a picture"))}, "/v1/compare", 422,
     "not_an_image", "image_a: not a recognised image format"),
    ("truncated image", {"json": compare_with(image_b=b64(noise_png(64)[:2000]))}, "/v1/compare", 422,
     "corrupt_image", "image_b: corrupt or truncated"),
    ("decompression bomb", {"json": compare_with(image_a=b64(bomb_png()))}, "/v1/compare", 413,
     "image_too_large", "image_a:"),
    ("too many pixels", {"json": compare_with(image_a=b64_png(9, (250, 250)))}, "/v1/compare", 413,
     "image_too_large", "40,000-pixel limit"),
    ("too many images", {"json": {"prompt": "p", "images": [b64_png(i) for i in range(5)]}},
     "/v1/group_rewards", 413, "too_many_images", "5 images, over the limit of 4"),
    ("too few images", {"json": {"prompt": "p", "images": [b64_png(1)]}}, "/v1/group_rewards", 422,
     "invalid_request", "images:"),
    ("body over the limit", {"json": compare_with(image_a=b64(noise_png(300)))}, "/v1/compare", 413,
     "body_too_large", "262,144-byte limit"),
    ("chunked body over the limit", {"content": iter([b'{"prompt": "' + b"x" * 100_000] * 4),
                                     "headers": {"content-type": "application/json"}},
     "/v1/compare", 413, "body_too_large", "byte limit"),
    ("pickle body", {"content": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00]\x94.",
                     "headers": {"content-type": "application/python-pickle"}},
     "/v1/compare", 415, "unsupported_media_type", "must be JSON"),
    ("form body", {"data": {"prompt": "p"}}, "/v1/compare", 415, "unsupported_media_type", "must be JSON"),
    ("absolute path", {"json": compare_with(image_a="/etc/passwd")}, "/v1/compare", 422, "path_not_allowed",
     "image_a: looks like a file path or URL"),
    ("relative image path", {"json": compare_with(image_b="../data/cat.png")}, "/v1/compare", 422,
     "path_not_allowed", "never reads server-side files"),
    ("file url", {"json": compare_with(image_a="file:///etc/shadow")}, "/v1/compare", 422, "path_not_allowed", ""),
    ("http url", {"json": compare_with(image_a="https://example.com/cat.jpg")}, "/v1/compare", 422,
     "path_not_allowed", ""),
    ("windows path", {"json": compare_with(image_a="C:\\images\\cat.png")}, "/v1/compare", 422,
     "path_not_allowed", ""),
    ("group path", {"json": {"prompt": "p", "images": [b64_png(1), "/srv/images/a.png"]}}, "/v1/group_rewards",
     422, "path_not_allowed", "images.1:"),
    ("t2i with a source", {"json": compare_with(task="t2i", source=b64_png(3))}, "/v1/compare", 422,
     "invalid_request", "takes no source image"),
    ("edit without a source", {"json": compare_with(task="edit")}, "/v1/compare", 422, "invalid_request",
     "source: task 'edit' needs a source image"),
    ("unknown route", {}, "/v1/judge", 404, "not_found", "Not Found"),
]


@pytest.mark.parametrize(("name", "kwargs", "path", "status", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(service, name, kwargs, path, status, code, fragment):
    method = "GET" if name == "unknown route" else "POST"
    response = httpx.request(method, service.url + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code
    assert fragment in error["message"], error["message"]
    # healthy afterwards: health answers and a good request is judged correctly
    assert httpx.get(service.url + "/health", timeout=10).json()["status"] == "ok"
    good = httpx.post(service.url + "/v1/compare", json=GOOD, timeout=30)
    assert good.status_code == 200 and good.json()["verdict"]["winner"] == "B"


def test_nothing_judged_for_bad_requests(service):
    before = service.server.config.app.state.service.backend.totals.requests
    httpx.post(service.url + "/v1/compare", json=compare_with(image_a="/etc/passwd"), timeout=30)
    httpx.post(service.url + "/v1/group_rewards", json={"prompt": "p", "images": [b64_png(1), "x!"]}, timeout=30)
    assert service.server.config.app.state.service.backend.totals.requests == before
