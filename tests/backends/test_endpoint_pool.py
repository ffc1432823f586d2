"""One model on several endpoints (``build_backend([url, ...])``): least-loaded routing, cooldown and
failover, per-endpoint counts, one cache — through the real HTTP client against scripted servers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading

import pytest

from arrpo.testing.scripted_server import ChatRequest, Reply, ScriptedVLMServer
from arrpo.vlm import BackendError, Message, VLMRequest, build_backend, endpoint_stats
from arrpo.vlm.settings import BackendSettings, parse_endpoints
from arrpo.vlm.wrappers import counting_retries


def echo(delay: float = 0.0):
    """Answer each request with its own text, so a test can see every answer reach its request."""
    return lambda request: Reply(text=json.dumps({"echo": request.text}), delay=delay)


def dead_url() -> str:
    """A loopback URL nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def request(i: int) -> VLMRequest:
    return VLMRequest((Message.user(f"request {i}"),))


def pool(urls, **options):
    defaults = {"cache_path": False, "max_retries": 0, "timeout": 10.0, "base_cooldown": 0.05,
                "retry_base_delay": 0.01}
    return build_backend(urls, "scripted", **{**defaults, **options})


async def answer_all(backend, n: int) -> list[str]:
    responses = await asyncio.gather(*(backend.complete(request(i)) for i in range(n)))
    return [json.loads(r.text)["echo"] for r in responses]


def by_url(backend) -> dict[str, dict]:
    return {s.endpoint: s.as_dict() for s in endpoint_stats(backend)}


def test_ties_go_round_robin_and_each_endpoint_keeps_its_own_limit(scripted_server):
    servers = [scripted_server(echo(0.02)) for _ in range(3)]
    backend = pool([s.base_url for s in servers], max_concurrency=2)

    async def run():
        for i in range(6):  # one at a time: every pick is a tie, broken by fewest started, then order
            await backend.complete(request(i))
        texts = await answer_all(backend, 30)
        await backend.aclose()
        return texts

    texts = asyncio.run(run())
    assert texts == [f"request {i}" for i in range(30)]  # every answer is its own request's
    assert [s.seen[0].text for s in servers] == ["request 0", "request 1", "request 2"]
    assert [s.seen[1].text for s in servers] == ["request 3", "request 4", "request 5"]
    assert sum(s.requests for s in servers) == 36
    assert all(s.max_in_flight <= 2 for s in servers)  # equal per-endpoint concurrency
    assert all(s.requests >= 6 for s in servers)
    stats = by_url(backend)
    assert [stats[s.base_url]["requests"] for s in servers] == [s.requests for s in servers]
    assert all(one["ok"] == one["requests"] and one["state"] == "up" and one["failures"] == {}
               for one in stats.values())


def test_requests_go_to_the_endpoint_with_the_fewest_in_flight(scripted_server):
    release = threading.Event()

    def held(request: ChatRequest) -> Reply:
        release.wait(30)  # blocks this endpoint's server until the test lets go
        return echo()(request)

    busy, free_1, free_2 = scripted_server(held), scripted_server(echo()), scripted_server(echo())
    backend = pool([busy.base_url, free_1.base_url, free_2.base_url], max_concurrency=4)

    async def run():
        stuck = asyncio.ensure_future(backend.complete(request(0)))  # the first pick: the first endpoint
        while by_url(backend)[busy.base_url]["in_flight"] == 0:
            await asyncio.sleep(0.005)
        for i in range(1, 7):  # one at a time: the busy endpoint has one in flight, the others none
            await backend.complete(request(i))
        release.set()
        await stuck
        await backend.aclose()

    asyncio.run(run())
    assert (busy.requests, free_1.requests, free_2.requests) == (1, 3, 3)


def test_a_dead_endpoint_at_start_is_named_and_the_run_goes_on_over_the_others(scripted_server, caplog):
    alive = [scripted_server(echo()) for _ in range(2)]
    dead = dead_url()
    backend = pool([dead, *(s.base_url for s in alive)], max_concurrency=2)  # no retries at all
    with caplog.at_level(logging.WARNING, logger="arrpo.vlm.pool"):
        texts = asyncio.run(answer_all(backend, 12))
    assert texts == [f"request {i}" for i in range(12)]
    assert sum(s.requests for s in alive) == 12  # each request answered once
    stats = by_url(backend)
    assert stats[dead]["ok"] == 0 and stats[dead]["failures"]["connect"] == stats[dead]["requests"] >= 1
    assert stats[dead]["cooldowns"] >= 1
    assert backend.totals.requests == 12 and backend.totals.errors == 0
    assert any(dead in record.getMessage() and "connect" in record.getMessage() for record in caplog.records)


def test_a_moved_request_counts_as_one_more_call_not_as_a_retry(scripted_server):
    alive = scripted_server(echo())
    dead = dead_url()
    backend = pool([dead, alive.base_url], max_concurrency=2)  # the first pick is the dead one

    async def run():
        with counting_retries() as tally:
            await backend.complete(request(0))
        return tally.retries

    assert asyncio.run(run()) == 1  # what eval's calls/pair adds; the retry budget (0 here) is untouched
    assert alive.requests == 1


@pytest.mark.parametrize(("reply", "fault"), [
    (Reply(status=500), "server_error"),
    (Reply(status=502), "server_error"),
    (Reply(drop=True), "connect"),
    (Reply(raw=b"<html>gateway</html>"), "bad_response"),
    (Reply(delay=3.0), "timeout"),
])
def test_a_failing_endpoint_cools_down_and_its_requests_move(scripted_server, reply, fault):
    bad = scripted_server(lambda request: reply)
    good = scripted_server(echo())
    backend = pool([bad.base_url, good.base_url], max_concurrency=4, timeout=0.5, base_cooldown=30.0)
    texts = asyncio.run(answer_all(backend, 10))
    assert texts == [f"request {i}" for i in range(10)]
    assert good.requests == 10
    stats = by_url(backend)
    assert stats[bad.base_url]["state"] == "cooling" and stats[bad.base_url]["cooldowns"] == 1
    assert stats[bad.base_url]["failures"] == {fault: stats[bad.base_url]["requests"]}
    assert stats[bad.base_url]["cooling_for_s"] > 25  # one cooldown, not one per failed request in flight
    assert stats[good.base_url]["ok"] == 10 and stats[good.base_url]["mean_latency_s"] > 0


def test_after_its_cooldown_one_probe_brings_an_endpoint_back(scripted_server):
    state = {"broken": True}
    flaky = scripted_server(lambda request: Reply(status=503) if state["broken"] else echo()(request))
    steady = scripted_server(echo())
    backend = pool([flaky.base_url, steady.base_url], max_concurrency=2, base_cooldown=0.3)

    async def run():
        await answer_all(backend, 4)
        assert by_url(backend)[flaky.base_url]["state"] == "cooling"
        await asyncio.sleep(0.35)  # past the cooldown: the next request it gets is a probe, which fails
        await answer_all(backend, 4)
        assert by_url(backend)[flaky.base_url]["cooldowns"] == 2  # the failed probe doubled it
        state["broken"] = False
        await asyncio.sleep(0.7)
        await answer_all(backend, 8)
        await backend.aclose()

    asyncio.run(run())
    stats = by_url(backend)[flaky.base_url]
    assert stats["state"] == "up" and stats["ok"] >= 1 and stats["cooldowns"] == 2


def test_a_retry_after_keeps_a_rate_limited_endpoint_out_that_long(scripted_server):
    limited = scripted_server(lambda request: Reply(status=429, headers={"Retry-After": "20"}))
    other = scripted_server(echo())
    backend = pool([limited.base_url, other.base_url], max_concurrency=2, base_cooldown=0.05)
    asyncio.run(answer_all(backend, 4))
    stats = by_url(backend)[limited.base_url]
    assert stats["failures"] == {"rate_limited": stats["requests"]} and stats["cooldowns"] == 1
    assert 15 < stats["cooling_for_s"] <= 20 and other.requests == 4


def test_a_bad_request_is_not_the_endpoint_s_fault(scripted_server):
    rejecting = scripted_server(lambda request: Reply(status=422))
    other = scripted_server(echo())
    backend = pool([rejecting.base_url, other.base_url], max_concurrency=2, max_retries=3)
    with pytest.raises(BackendError, match="422"):
        asyncio.run(backend.complete(request(0)))  # the first pick; raised as is, not moved or retried
    assert (rejecting.requests, other.requests) == (1, 0)
    stats = by_url(backend)[rejecting.base_url]
    assert stats["state"] == "up" and stats["failures"] == {"rejected": 1} and stats["cooldowns"] == 0


def test_all_endpoints_dead_is_a_backend_error_after_the_retry_budget(caplog):
    dead = [dead_url() for _ in range(3)]
    backend = pool(dead, max_concurrency=2, max_retries=2, base_cooldown=0.01)
    with caplog.at_level(logging.WARNING, logger="arrpo.vlm.pool"), pytest.raises(BackendError) as error:
        asyncio.run(backend.complete(request(0)))
    message = str(error.value)
    assert "all 3 endpoints" in message and "gave up after 3 attempts" in message and not error.value.retryable
    stats = by_url(backend)
    assert all(one["ok"] == 0 and one["failures"]["connect"] >= 1 for one in stats.values())
    assert sum(one["requests"] for one in stats.values()) <= 9  # one try per endpoint per attempt
    assert {url for url in dead if any(url in r.getMessage() for r in caplog.records)} == set(dead)


def test_when_all_cool_down_requests_wait_for_the_first_back(scripted_server):
    failures = {"left": 4}

    def recovering(request: ChatRequest) -> Reply:
        if failures["left"] > 0:
            failures["left"] -= 1
            return Reply(status=500)
        return echo()(request)

    servers = [scripted_server(recovering) for _ in range(2)]
    backend = pool([s.base_url for s in servers], max_concurrency=2, max_retries=8, base_cooldown=0.02)
    texts = asyncio.run(answer_all(backend, 2))
    assert texts == ["request 0", "request 1"]
    assert failures["left"] == 0


def test_one_cache_for_every_endpoint_whichever_answered(scripted_server, tmp_path):
    first, second = scripted_server(echo()), scripted_server(echo())
    cache = tmp_path / "cache.sqlite"

    async def ask(urls):
        backend = pool(urls, cache_path=cache)
        response = await backend.complete(request(7))
        await backend.aclose()
        return response, backend.model_id

    answered, model_id = asyncio.run(ask([first.base_url, second.base_url]))
    again, reversed_id = asyncio.run(ask([second.base_url + "/", first.base_url]))
    assert not answered.cached and again.cached and again.text == answered.text
    assert model_id == reversed_id and (first.requests + second.requests) == 1


def test_a_single_endpoint_never_cools_down_and_keeps_its_retry_behaviour(scripted_server):
    calls = {"n": 0}

    def fails_once(request: ChatRequest) -> Reply:
        calls["n"] += 1
        return Reply(status=500) if calls["n"] == 1 else echo()(request)

    server = scripted_server(fails_once)
    backend = pool(server.base_url, max_retries=1)
    assert backend.model_id == f"openai:{server.base_url}#scripted"  # as before pools existed
    assert asyncio.run(backend.complete(request(1))).text == json.dumps({"echo": "request 1"})
    stats = by_url(backend)[server.base_url]
    assert stats["cooldowns"] == 0 and stats["state"] == "up" and stats["failures"] == {"server_error": 1}


def test_an_endpoint_killed_mid_run_loses_and_duplicates_nothing():
    servers = [ScriptedVLMServer(echo(0.02)).start() for _ in range(3)]
    try:
        backend = pool([s.base_url for s in servers], max_concurrency=3)

        async def run():
            pending = asyncio.ensure_future(answer_all(backend, 60))
            while servers[1].requests < 5:
                await asyncio.sleep(0.005)
            await asyncio.to_thread(servers[1].stop)
            texts = await pending
            await backend.aclose()
            return texts

        texts = asyncio.run(run())
    finally:
        for server in servers:
            server.stop()
    assert texts == [f"request {i}" for i in range(60)]
    stats = by_url(backend)
    assert sum(one["ok"] for one in stats.values()) == 60
    assert stats[servers[1].base_url]["state"] == "cooling"


@pytest.mark.parametrize(("value", "message"), [
    ([], "the endpoint list is empty"),
    (",", "the endpoint list is empty"),
    (["http://h:8000/v1", "http://H:8000/v1/"], "the endpoint list has http://h:8000/v1 twice (as "),
    ("http://a/v1, http://b/v1,http://a/v1", "has http://a/v1 twice"),
    (["localhost:8000"], "endpoint 'localhost:8000' is not an HTTP URL (no http:// or https://)"),
    ("ftp://h/v1", "scheme 'ftp'"),
    ("http://h:99999/v1", "has a port that is not a number"),
    ("http:///v1", "names no host"),
    ("http://h/v1#frag", "'#' fragment"),
    ("http://h /v1", "contains a space"),
    ([3], "must be a URL string"),
])
def test_bad_endpoint_lists_are_refused_in_one_line(value, message):
    with pytest.raises(ValueError, match=None) as error:
        parse_endpoints(value)
    assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError) as settings_error:
        BackendSettings(endpoint=value)
    assert message in str(settings_error.value)


def test_endpoint_lists_are_normalised_in_settings(monkeypatch):
    assert BackendSettings(endpoint="http://A:8000/v1/").endpoint == "http://a:8000/v1"
    assert BackendSettings(endpoint="http://a/v1, https://b:443/v1").endpoint == ["http://a/v1", "https://b/v1"]
    assert BackendSettings(endpoint=["http://a/v1"]).endpoints() == ["http://a/v1"]
    assert BackendSettings(endpoint="").endpoint is None
    assert BackendSettings(endpoint="http://a/v1,http://b/v1,http://c/v1", max_concurrency=4).total_concurrency() == 12
    monkeypatch.setenv("ARRPO_ENDPOINT", "http://a:1/v1,http://b:2/v1/")
    assert BackendSettings().resolved().endpoint == ["http://a:1/v1", "http://b:2/v1"]
    assert BackendSettings(max_concurrency=4).total_concurrency() == 8
    assert BackendSettings(kind="transformers", max_concurrency=4).total_concurrency() == 4
