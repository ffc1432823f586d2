"""No silent zero reward: service down, 413, 422, 503 storms and single-sample groups fail the
step by default (after the retry budget), or are masked, logged and counted when opted in."""

from __future__ import annotations

import logging

import httpx
import pytest
from PIL import Image

from arrpo.client import RewardClient, RewardServiceError
from arrpo.integrations.groups import GroupScorer, RewardGroupError
from arrpo.server import ServiceConfig
from tests.serve.helpers import slow_brighter_wins


def grays(*values: int) -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), (v, v, v)) for v in values]


def test_connection_errors_are_retried_with_backoff_then_reported():
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    with RewardClient("http://reward.test", max_retries=3, backoff=0.001) as client:
        client._http = httpx.Client(base_url="http://reward.test", transport=httpx.MockTransport(refuse))
        with pytest.raises(RewardServiceError) as caught:
            client.compare("p", *grays(1, 2))
    assert len(attempts) == 4 and caught.value.status == 0 and caught.value.code == "unreachable"


def test_a_dropped_connection_then_success_is_transparent():
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        return httpx.Response(200, json={"id": None, "rubric": {"mode": "none"}, "verdict": {"winner": "A", "reason": "r"}})

    with RewardClient("http://reward.test", backoff=0.001) as client:
        client._http = httpx.Client(base_url="http://reward.test", transport=httpx.MockTransport(flaky))
        assert client.compare("p", *grays(1, 2)).verdict.winner == "A"
    assert len(calls) == 2


def test_the_async_client_retries_a_dropped_connection_and_reports_a_service_that_stays_down():
    import asyncio

    from arrpo.client import AsyncRewardClient

    calls = []
    answer = {"id": None, "rubric": {"mode": "none"}, "verdict": {"winner": "B", "reason": "r"}}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        if len(calls) >= 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=answer)

    async def run():
        async with AsyncRewardClient("http://reward.test", max_retries=2, backoff=0.001) as client:
            client._http = httpx.AsyncClient(base_url="http://reward.test", transport=httpx.MockTransport(flaky))
            first = await client.compare("p", *grays(1, 2))
            with pytest.raises(RewardServiceError) as caught:
                await client.compare("p", *grays(1, 2))
            return first, caught.value

    first, error = asyncio.run(run())
    assert first.verdict.winner == "B" and len(calls) == 2 + 3  # then 1 try + 2 retries, all refused
    assert error.status == 0 and error.code == "unreachable" and "after 3 attempt(s)" in error.message
    assert isinstance(error.__cause__, httpx.ConnectError)


def test_413_body_too_large(start_service):
    service = start_service(config=ServiceConfig(max_body_bytes=2_000))
    big = [Image.effect_noise((64, 64), 100).convert("RGB") for _ in range(2)]
    with pytest.raises(RewardServiceError) as caught:
        GroupScorer(service.url).score_batch(big, ["p", "p"])
    assert caught.value.status == 413 and caught.value.code == "body_too_large"
    masked = GroupScorer(service.url, on_failure="mask")
    out = masked.score_batch(big, ["p", "p"])
    assert out.scores == [0.0, 0.0] and out.mask == [False, False] and out.failed_groups == 1
    assert masked.stats["failed_groups"] == 1 and "413" in out.errors[0]


def test_too_many_images_refused_before_sending_by_the_limit_the_service_reports(start_service):
    service = start_service(config=ServiceConfig(max_images=4))
    for scorer in (GroupScorer(service.url), GroupScorer(service.url, max_group_images=8)):  # /health: 4
        with pytest.raises(RewardGroupError, match="limit of 4"):
            scorer.score_batch(grays(*range(6)), ["p"] * 6)
        assert scorer.group_image_limit() == 4
    with pytest.raises(RewardGroupError, match="limit of 3"):  # a lower limit of the caller's own holds
        GroupScorer(service.url, max_group_images=3).score_batch(grays(*range(4)), ["p"] * 4)
    assert not service.vlm.seen
    split = GroupScorer(service.url, split_large_groups=True).score_batch(grays(*range(10, 70, 10)), ["p"] * 6)
    assert split.failed_groups == 0 and all(split.mask)  # two sub-groups of 3, no 413
    assert len(service.vlm.seen) == 2 * 3


def test_422_invalid_request(start_service):
    service = start_service(config=ServiceConfig(max_prompt_chars=20))
    with pytest.raises(RewardServiceError) as caught:
        GroupScorer(service.url).score_batch(grays(1, 2), ["a prompt far longer than twenty characters"] * 2)
    assert caught.value.status == 422 and "prompt" in caught.value.message
    out = GroupScorer(service.url, on_failure="mask").score_batch(grays(1, 2, 3, 4), ["x" * 30] * 2 + ["ok"] * 2)
    assert out.scores == pytest.approx([0.0, 0.0, -0.1, 1.0]) and out.failed_groups == 1


def test_503_from_another_job_exhausts_the_retry_budget(start_service, caplog):
    """Another job holds the service's only admission slot: our requests draw 503s, retried
    within the budget, then fail the step (or are masked, counted and logged)."""
    import threading

    service = start_service(slow_brighter_wins(1.5), concurrency=1, config=ServiceConfig(max_pending=1))
    other = threading.Thread(target=lambda: RewardClient(service.url).group_rewards("theirs", grays(1, 2)))
    other.start()
    try:
        while service.state.gate.in_use == 0:  # the other job is being judged
            threading.Event().wait(0.01)
        storm = GroupScorer(service.url, max_retries=1, backoff=0.01, max_wait=0.01)
        with pytest.raises(RewardServiceError) as caught:
            storm.score_batch(grays(10, 20), ["p", "p"])
        assert caught.value.status == 503 and caught.value.code == "saturated"
        masked = GroupScorer(service.url, max_retries=1, backoff=0.01, max_wait=0.01, on_failure="mask")
        with caplog.at_level(logging.WARNING, logger="arrpo.integrations"):
            out = masked.score_batch(grays(10, 20, 30, 40), ["p", "p", "q", "q"])
        assert out.failed_groups == 2 and out.masked_samples == 4
        assert masked.stats["failed_groups"] == 2
        assert "failed request" in caplog.text
    finally:
        other.join()


def test_default_parallelism_stays_within_the_admission_gate(start_service):
    """capacity 12 judge calls, groups of 4 (6 pairs): two groups in flight, never a 503."""
    service = start_service(slow_brighter_wins(0.05), concurrency=16, config=ServiceConfig(max_pending=12))
    prompts = [f"p{k}" for k in range(6) for _ in range(4)]
    out = GroupScorer(service.url, max_retries=0).score_batch(grays(*range(0, 240, 10)), prompts)
    assert all(out.mask) and service.state.gate.rejected == 0
    assert service.vlm.max_in_flight <= 12


def test_single_sample_groups(service):
    with pytest.raises(RewardGroupError, match="single sample"):
        GroupScorer(service.url).score_batch(grays(1, 2, 3), ["a", "b", "b"])
    out = GroupScorer(service.url, on_failure="mask").score_batch(grays(1, 2, 3), ["a", "b", "b"])
    assert out.scores == pytest.approx([0.0, -0.1, 1.0]) and out.unscorable_groups == 1


def test_option_typos_fail_at_construction(service):
    with pytest.raises(ValueError, match="on_bad_verdic"):
        GroupScorer(service.url, on_bad_verdic="drop_pair")
    with pytest.raises(ValueError, match="on_failure"):
        GroupScorer(service.url, on_failure="ignore")
    with pytest.raises(ValueError, match="order"):
        GroupScorer(service.url, mode="pointwise", order="sideways")


def test_the_service_limits_are_read_again_after_a_failure(service):
    """The service restarts with a lower --max-images: the next request is refused (413), the
    limit is read again, and the call after that refuses the group before sending it."""
    scorer = GroupScorer(service.url)
    assert scorer.score_batch(grays(*range(10, 70, 10)), ["p"] * 6).failed_groups == 0  # 16 read from /health
    state = service.state  # as if restarted with --max-images 4 (the config is frozen: a new one)
    state.config = state.config.model_copy(update={"max_images": 4})
    with pytest.raises(RewardServiceError) as caught:
        scorer.score_batch(grays(*range(10, 70, 10)), ["p"] * 6)
    assert caught.value.status == 413
    sent = len(service.vlm.seen)
    with pytest.raises(RewardGroupError, match="limit of 4"):
        scorer.score_batch(grays(*range(10, 70, 10)), ["p"] * 6)
    assert len(service.vlm.seen) == sent and scorer.group_image_limit() == 4


def test_health_is_waited_for_through_the_retry_budget():
    """A service that refuses connections twice, then answers: /health is retried, not guessed."""
    answers = iter([None, None])

    def flaky(request: httpx.Request) -> httpx.Response:
        if next(answers, "up") is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"status": "ok", "version": "0", "model": "m", "in_flight": 0, "capacity": 8,
                                         "task_rubrics": [], "prompt_rubrics": False,
                                         "limits": {"max_images": 24, "max_body_bytes": 1, "max_image_pixels": 1,
                                                    "max_prompt_chars": 1}})

    with RewardClient("http://reward.test", backoff=0.001) as client:
        client._http = httpx.Client(base_url="http://reward.test", transport=httpx.MockTransport(flaky))
        assert client.limits().max_images == 24
