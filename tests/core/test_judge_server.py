"""The judge and the OpenAI-compatible backend against a scripted server on 127.0.0.1.

The server "sees" the images: it prefers the brighter one, unless the prompt asks it to
misbehave (server errors, rate limits, slow answers, dropped connections, malformed output).
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

import pytest

from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.testing.scripted_server import ChatRequest, Reply
from arrpo.vlm import build_backend


def brightness(image) -> float:
    return sum(image.convert("L").getdata()) / (image.width * image.height)


class Script:
    """A handler whose behaviour depends on keywords in the prompt; counts calls per prompt."""

    def __init__(self, position_bias: bool = False):
        self.calls: dict[str, int] = defaultdict(int)
        self.position_bias = position_bias
        self.lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Reply:
        caption = next(t for t in request.texts if "Caption:" in t or "instruction:" in t)
        key = caption.split("Caption:")[-1].split("\n")[0].strip() if "Caption:" in caption else caption
        with self.lock:
            self.calls[key] += 1
            n = self.calls[key]
        if "always500" in key:
            return Reply(status=500)
        if "flaky500" in key and n <= 2:
            return Reply(status=503)
        if "ratelimited" in key and n == 1:
            return Reply(status=429, headers={"Retry-After": "0.2"})
        if "slow" in key and n == 1:
            return Reply(delay=3.0)
        if "drop" in key and n == 1:
            return Reply(drop=True)
        if "garbage" in key:
            return Reply(text="I think the first one? Not sure." if n == 1 else "still no json")
        if "fixable" in key and n == 1:
            return Reply(text="The first image is better.")
        if "badrequest" in key:
            return Reply(status=400, body={"error": {"message": "image too large"}})
        images = request.images()[-2:]  # for edits the source comes first
        if self.position_bias:
            return Reply(text='{"rank": [1, 2], "reason": "first looks nicer"}')
        first_better = brightness(images[0]) > brightness(images[1])
        rank = "[1, 2]" if first_better else "[2, 1]"
        return Reply(text=f'{{"rank": {rank}, "reason": "the brighter image wins"}}', delay=0.02)


def comparisons(make_image, prompts, bright_is_a=True):
    out = []
    for i, prompt in enumerate(prompts):
        bright, dark = make_image((200, 200, 200 - i % 50)), make_image((20, 20, 20 + i % 50))
        a, b = (bright, dark) if bright_is_a else (dark, bright)
        out.append(Comparison(prompt=prompt, image_a=a, image_b=b, id=f"c{i}"))
    return out


@pytest.fixture
def backend_for(scripted_server, tmp_path):
    def make(script, **kwargs):
        server = scripted_server(script)
        options = {"timeout": 1.0, "max_retries": 3, "cache_path": False, "retry_base_delay": 0.01}
        options.update(kwargs)
        return server, build_backend(server.base_url, "scripted-vlm", **options)

    return make


@pytest.mark.parametrize("order", ["given", "random", "both"])
async def test_correct_answers_under_every_policy(make_image, backend_for, order):
    server, backend = backend_for(Script())
    judge = PairwiseJudge(backend, order=order)
    items = comparisons(make_image, [f"p{i}" for i in range(10)], bright_is_a=True)
    items += comparisons(make_image, [f"q{i}" for i in range(10)], bright_is_a=False)
    verdicts = await judge.judge_many(items)
    assert [v.id for v in verdicts] == [c.id for c in items]
    assert [v.winner for v in verdicts] == ["A"] * 10 + ["B"] * 10
    expected_requests = 40 if order == "both" else 20
    assert server.requests == expected_requests
    if order == "both":
        assert all(v.orders_agree for v in verdicts)
    if order == "random":
        assert {v.answers[0].order for v in verdicts} == {"AB", "BA"}
    await backend.aclose()


async def test_position_biased_model_gives_ties_with_both(make_image, backend_for):
    _, backend = backend_for(Script(position_bias=True))
    verdicts = await PairwiseJudge(backend, order="both").judge_many(comparisons(make_image, ["a", "b"]))
    assert [v.winner for v in verdicts] == ["tie", "tie"]
    assert all(v.orders_agree is False for v in verdicts)
    invalid = await PairwiseJudge(backend, order="both", on_disagree="invalid").judge_many(
        comparisons(make_image, ["c"])
    )
    assert invalid[0].winner == "invalid" and "disagree" in invalid[0].invalid_reason
    await backend.aclose()


async def test_retries_recover_transient_failures(make_image, backend_for):
    script = Script()
    server, backend = backend_for(script)
    judge = PairwiseJudge(backend, order="given")
    prompts = ["flaky500", "ratelimited", "slow", "drop"]
    verdicts = await judge.judge_many(comparisons(make_image, prompts))
    assert [v.winner for v in verdicts] == ["A"] * 4, [v.invalid_reason for v in verdicts]
    assert script.calls["flaky500"] == 3 and script.calls["ratelimited"] == 2
    assert script.calls["slow"] == 2 and script.calls["drop"] == 2
    assert server.statuses[503] == 2 and server.statuses[429] == 1 and server.statuses["drop"] == 1
    assert backend.inner.retries == 5  # Metered → Retrying (no cache here)
    await backend.aclose()


async def test_retry_after_is_honoured(make_image, backend_for):
    script = Script()
    _, backend = backend_for(script, retry_base_delay=0.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = await PairwiseJudge(backend, order="given").judge(comparisons(make_image, ["ratelimited"])[0])
    assert verdict.winner == "A" and loop.time() - started >= 0.2  # waited what the server asked
    await backend.aclose()


async def test_retry_after_as_an_http_date_is_honoured_and_capped(make_image, scripted_server):
    import email.utils
    from datetime import datetime, timedelta, timezone

    from arrpo.vlm import BackendError

    header = {"Retry-After": ""}
    server = scripted_server(lambda request: Reply(status=429, headers=dict(header)))
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=False)
    retrying = backend.inner  # Metered -> Retrying (no cache here)
    request = PairwiseJudge(backend, order="given").build_request(comparisons(make_image, ["x"])[0], "AB")

    async def refused_with(offset: timedelta) -> BackendError:
        header["Retry-After"] = email.utils.format_datetime(datetime.now(timezone.utc) + offset, usegmt=True)
        with pytest.raises(BackendError) as caught:
            await backend.complete(request)
        return caught.value

    soon = await refused_with(timedelta(seconds=20))  # HTTP-dates have whole seconds
    assert 15 <= soon.retry_after <= 20 and retrying.delay_for(1, soon) == soon.retry_after < retrying.max_delay
    late = await refused_with(timedelta(hours=2))
    assert 7000 <= late.retry_after <= 7200 and retrying.delay_for(1, late) == retrying.max_delay  # clamped
    past = await refused_with(timedelta(hours=-1))
    assert past.retry_after == 0.0 and retrying.delay_for(1, past) == 0.0
    header["Retry-After"] = "not a date"
    with pytest.raises(BackendError) as caught:
        await backend.complete(request)
    assert caught.value.retry_after is None  # backoff applies
    await backend.aclose()


async def test_failures_end_as_invalid_not_exceptions(make_image, backend_for):
    script = Script()
    _, backend = backend_for(script)
    judge = PairwiseJudge(backend, order="given", parse_retries=1)
    verdicts = await judge.judge_many(comparisons(make_image, ["always500", "garbage", "badrequest", "fixable"]))
    by_id = {v.id: v for v in verdicts}
    assert by_id["c0"].winner == "invalid" and "gave up after 4 attempts" in by_id["c0"].invalid_reason
    assert by_id["c0"].answers[0].backend_failed and not by_id["c1"].answers[0].backend_failed
    assert by_id["c1"].winner == "invalid" and "no JSON" in by_id["c1"].invalid_reason
    assert by_id["c1"].answers[0].attempts == 2 and by_id["c1"].answers[0].raw == "still no json"
    assert by_id["c2"].winner == "invalid" and "image too large" in by_id["c2"].invalid_reason
    assert script.calls["badrequest"] == 1  # a 400 is not retried
    assert by_id["c3"].winner == "A" and by_id["c3"].answers[0].attempts == 2
    await backend.aclose()


async def test_concurrency_limit_is_never_exceeded_and_nothing_is_lost(make_image, backend_for):
    server, backend = backend_for(Script(), max_concurrency=3)
    items = comparisons(make_image, [f"load{i}" for i in range(40)])
    verdicts = await PairwiseJudge(backend, order="both").judge_many(items, max_pending=40)
    assert len(verdicts) == 40 and all(v.winner == "A" for v in verdicts)
    assert server.requests == 80 and server.max_in_flight <= 3
    assert server.max_in_flight == 3  # the limit was actually reached
    assert backend.totals.usage.prompt_tokens == 80 * 100
    await backend.aclose()


async def test_cache_answers_a_rerun_without_the_server(make_image, backend_for, tmp_path):
    server, backend = backend_for(Script(), cache_path=tmp_path / "cache.sqlite")
    items = comparisons(make_image, ["x", "y"])
    first = await PairwiseJudge(backend, order="both").judge_many(items)
    await backend.aclose()
    server.stop()
    again_backend = build_backend(server.base_url, "scripted-vlm", cache_path=tmp_path / "cache.sqlite",
                                  max_retries=0, timeout=0.5)
    again = await PairwiseJudge(again_backend, order="both").judge_many(items)
    assert [v.winner for v in again] == [v.winner for v in first] == ["A", "A"]
    assert again_backend.totals.cached == 4
    assert all(a.cached == 1 for v in again for a in v.answers)  # no model call behind them
    assert all(a.cached == 0 for v in first for a in v.answers)
    await again_backend.aclose()


async def test_edit_comparison_sends_source_first(make_image, backend_for):
    server, backend = backend_for(Script())
    src = make_image((0, 0, 255))
    item = Comparison(task="edit", prompt="brighten it", image_a=make_image((10, 10, 10)),
                      image_b=make_image((240, 240, 240)), source=src, id="e")
    verdict = await PairwiseJudge(backend, order="given").judge(item)
    assert verdict.winner == "B"
    request = server.seen[-1]
    assert request.texts[:3] == ["Image BASE (original image):", "Edited Image 1:", "Edited Image 2:"]
    assert len(request.image_bytes) == 3 and request.image_bytes[0] == src.data
    await backend.aclose()


async def test_edit_retry_names_the_edited_images(make_image, backend_for):
    """The re-ask after an unusable answer uses the task's labels ("Edited Image 1" for edits)."""
    answers = iter(["The second edit is better.", '{"rank": [2, 1], "reason": "brighter"}'])
    server, backend = backend_for(lambda request: Reply(text=next(answers)))
    item = Comparison(task="edit", prompt="brighten it", image_a=make_image((10, 10, 10)),
                      image_b=make_image((240, 240, 240)), source=make_image((0, 0, 255)), id="e")
    verdict = await PairwiseJudge(backend, order="given", parse_retries=1).judge(item)
    assert verdict.winner == "B" and verdict.answers[0].attempts == 2
    re_ask = server.seen[-1].messages[-1]["content"]
    re_ask_text = re_ask if isinstance(re_ask, str) else " ".join(p.get("text", "") for p in re_ask)
    assert "could not be used" in re_ask_text
    assert "rank of Edited Image 1" in re_ask_text and "rank of Edited Image 2" in re_ask_text
    await backend.aclose()


def test_sync_wrapper_reuses_the_client(make_image, scripted_server):
    server = scripted_server(Script())
    backend = build_backend(server.base_url, "m", cache_path=False)
    judge = PairwiseJudge(backend, order="given")
    items = comparisons(make_image, ["s1", "s2"])
    assert judge.judge_sync(items[0]).winner == "A"
    assert [v.winner for v in judge.judge_many_sync(items)] == ["A", "A"]


async def test_unusable_backend_is_raised_not_recorded(make_image):
    from arrpo.vlm import BackendUnavailable

    class Unconfigured:
        model_id = "none"

        async def complete(self, request):
            raise BackendUnavailable("set ARRPO_API_KEY")

        async def aclose(self):
            pass

    with pytest.raises(BackendUnavailable, match="ARRPO_API_KEY"):
        await PairwiseJudge(Unconfigured(), order="given").judge(comparisons(make_image, ["x"])[0])


async def test_server_without_json_mode_is_asked_without_it(make_image, backend_for):
    formats = []

    def handler(request: ChatRequest) -> Reply:
        formats.append(request.body.get("response_format"))
        if "response_format" in request.body:
            return Reply(status=400, body={"error": {"message": "response_format is not supported"}})
        return Reply(text='{"rank": [1, 2], "reason": "ok"}')

    _, backend = backend_for(handler)
    judge = PairwiseJudge(backend, order="given")
    verdicts = await judge.judge_many(comparisons(make_image, ["one", "two"]), max_pending=1)
    assert [v.winner for v in verdicts] == ["A", "A"]
    assert formats == [{"type": "json_object"}, None, None]  # asked once with it, never again
    await backend.aclose()
