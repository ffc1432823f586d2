"""The SQLite response cache: hits, misses, keys, and sharing between threads."""

from __future__ import annotations

import asyncio
import threading

from arrpo.images import load_image
from arrpo.schema import Usage
from arrpo.vlm import Cached, Message, ResponseCache, VLMRequest, VLMResponse, wrap_backend
from tests.conftest import solid_png


class CountingBackend:
    def __init__(self):
        self.calls = 0

    @property
    def model_id(self) -> str:
        return "counting"

    async def complete(self, request: VLMRequest) -> VLMResponse:
        self.calls += 1
        await asyncio.sleep(0)
        return VLMResponse(text=f"answer {request.messages[0].text}", usage=Usage(prompt_tokens=3))

    async def aclose(self) -> None:
        pass


def request(text: str, image_color=(0, 0, 0), temperature: float = 0.0) -> VLMRequest:
    image = load_image(solid_png(image_color))
    return VLMRequest(messages=(Message.user(image, text),), temperature=temperature)


async def test_hits_and_misses(tmp_path):
    inner = CountingBackend()
    cache = ResponseCache(tmp_path / "c.sqlite")
    backend = Cached(inner, cache)
    first = await backend.complete(request("a"))
    again = await backend.complete(request("a"))
    assert not first.cached and again.cached and again.text == first.text
    assert again.usage == first.usage
    await backend.complete(request("b"))
    await backend.complete(request("a", image_color=(1, 1, 1)))
    await backend.complete(request("a", temperature=0.7))
    assert inner.calls == 4 and cache.hits == 1 and len(cache) == 4


async def test_persists_across_instances(tmp_path):
    path = tmp_path / "c.sqlite"
    await Cached(CountingBackend(), ResponseCache(path)).complete(request("x"))
    inner = CountingBackend()
    hit = await Cached(inner, ResponseCache(path)).complete(request("x"))
    assert hit.cached and inner.calls == 0


async def test_model_id_is_part_of_the_key():
    req = request("same")
    assert req.fingerprint("model-1") != req.fingerprint("model-2")
    assert req.fingerprint("model-1") == request("same").fingerprint("model-1")


def test_concurrent_writers(tmp_path):
    path = tmp_path / "c.sqlite"
    errors: list[Exception] = []

    def worker(n: int) -> None:
        try:
            cache = ResponseCache(path)
            for i in range(50):
                cache.put(f"k{n}-{i}", VLMResponse(text=str(i)))
                assert cache.get(f"k{n}-{i}").text == str(i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(ResponseCache(path)) == 200


async def test_metered_counts_cached(tmp_path):
    backend = wrap_backend(CountingBackend(), cache_path=tmp_path / "c.sqlite")
    await backend.complete(request("q"))
    await backend.complete(request("q"))
    assert backend.totals.requests == 2 and backend.totals.cached == 1
    assert backend.totals.usage.prompt_tokens == 3
