"""The defaults every adapter shares: the retry budget the docs state is the one the client waits
(measured on the real client), and the mixed-prompt advice is one a fixed-chunk user can follow."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from arrpo import client as client_module
from arrpo.client import RewardServiceError, retry_waits, shared_async_client
from arrpo.integrations.groups import DEFAULT_RETRIES, GroupScorer, RewardGroupError
from tests.serve.helpers import png_bytes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def measured_waits(settings: dict, monkeypatch) -> tuple[list[float], RewardServiceError]:
    """Every wait the adapters' client makes for a service that refuses connections (sleeps
    recorded, not slept)."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async def run() -> RewardServiceError:
        client = shared_async_client("http://budget.test", **settings)
        client._http = httpx.AsyncClient(base_url="http://budget.test", transport=httpx.MockTransport(refuse))
        monkeypatch.setattr(client_module.asyncio, "sleep", record)
        try:
            await client.health()
        except RewardServiceError as exc:
            return exc
        raise AssertionError("the health check did not fail")

    error = asyncio.run(run())
    return waits, error


def test_the_default_retry_budget_is_the_documented_ten_minutes(monkeypatch):
    scorer = GroupScorer("http://budget.test")
    assert {k: scorer.client_settings[k] for k in DEFAULT_RETRIES} == DEFAULT_RETRIES
    waits, error = measured_waits(scorer.client_settings, monkeypatch)
    assert len(waits) == DEFAULT_RETRIES["max_retries"] and error.code == "unreachable"
    assert sum(waits) == pytest.approx(601.5)
    assert waits == retry_waits(**DEFAULT_RETRIES)
    text = DOCS.read_text()
    assert "601.5 s ≈ 10 minutes" in text and f"`max_retries` {DEFAULT_RETRIES['max_retries']}" in text
    documented = re.search(r"own default \(5 retries\) waits ([\d.]+) s", text)
    assert documented and float(documented.group(1)) == sum(retry_waits(5, 0.5, 30.0))


def test_a_fixed_chunk_mixing_prompts_is_told_to_keep_each_group_in_a_row(service):
    scorer = GroupScorer(service.url, group_size=2)
    with pytest.raises(RewardGroupError) as caught:
        scorer.score_batch([png_bytes(10), png_bytes(20)], ["a cat", "a dog"])
    assert "group_size unset" not in str(caught.value) and "in a row" in str(caught.value)
    assert not service.vlm.seen
