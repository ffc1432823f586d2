"""``POST /v1/group_member``: the service assembles a group from one request per member."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from arrpo.server import ServiceConfig
from tests.serve.helpers import TOKEN, b64_png


def member(gray: int, group: str = "g", size: int = 3, **extra) -> dict:
    return {"prompt": "a cat", "image": b64_png(gray), "group": group, "group_size": size, "wait": 20, **extra}


async def post_all(url: str, bodies: list[dict], headers: dict | None = None, stagger: float = 0.0) -> list:
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        async def one(k: int, body: dict) -> httpx.Response:
            await asyncio.sleep(stagger * k)
            return await client.post("/v1/group_member", json=body)

        return list(await asyncio.gather(*(one(k, b) for k, b in enumerate(bodies))))


def test_members_get_their_own_values_and_copies_count_once(service):
    bodies = [member(30), member(200), member(30), member(120)]  # the third is a copy of the first
    answers = [r.json() for r in asyncio.run(post_all(service.url, bodies, stagger=0.05))]
    assert [a["reward"] for a in answers] == pytest.approx([-0.1, 1.0, -0.1, 0.45])
    assert [a["duplicate"] for a in answers] == [False, False, True, False]
    assert [a["index"] for a in answers] == [0, 1, 0, 2]
    assert service.vlm.requests == 3
    late = asyncio.run(post_all(service.url, [member(200)]))[0].json()  # a copy after judging: remembered
    assert late["duplicate"] and late["reward"] == pytest.approx(1.0) and service.vlm.requests == 3


def test_a_fragment_times_out_for_every_member_and_late_members_at_once(service, caplog):
    caplog.set_level(logging.WARNING, logger="arrpo.server")
    bodies = [member(30, size=4, wait=1.0), member(90, size=4, wait=1.0)]
    answers = asyncio.run(post_all(service.url, bodies))
    assert [a.status_code for a in answers] == [504, 504]
    assert "2 of 4 members arrived" in answers[0].json()["error"]["message"]
    late = asyncio.run(post_all(service.url, [member(150, size=4, wait=1.0)]))[0]
    assert late.status_code == 504 and service.vlm.requests == 0
    assert any("never judged as a group" in r.getMessage() for r in caplog.records)


def test_refusals(start_service):
    service = start_service(config=ServiceConfig(max_images=4, token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        (member(30, size=5), 413, "too_many_images"),
        ({**member(30), "image": "not base64!"}, 422, "bad_base64"),
        (member(30, size=1), 422, "invalid_request"),
        ({**member(30), "wait": 99999}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        answer = asyncio.run(post_all(service.url, [body], headers=auth))[0]
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), body
    assert asyncio.run(post_all(service.url, [member(30)]))[0].status_code == 401
    first, conflicting = asyncio.run(post_all(service.url, [member(30, wait=1.0), member(60, preset="symmetric")],
                                              headers=auth, stagger=0.1))
    assert conflicting.status_code == 409 and conflicting.json()["error"]["code"] == "group_conflict"
    assert first.status_code == 504


def test_an_anchor_judges_each_member_against_it_and_allows_a_group_of_one(service):
    anchored = [member(g, size=3, anchor=b64_png(128)) for g in (30, 200, 150)]
    answers = [r.json() for r in asyncio.run(post_all(service.url, anchored))]
    assert [a["reward"] for a in answers] == pytest.approx([-0.1, 1.0, 1.0])
    one = asyncio.run(post_all(service.url, [member(90, group="solo", size=1, anchor=b64_png(128))]))[0].json()
    assert one["reward"] == pytest.approx(-0.1) and service.vlm.requests == 4


def test_a_partly_masked_group_is_masked_whole_for_hosts_that_cannot_see_masks(start_service):
    from tests.hosts.judges import invalid_when

    service = start_service(invalid_when({77}))
    bodies = [member(g, size=3, on_bad_verdict="drop_pair") for g in (30, 77, 200)]
    answers = [r.json() for r in asyncio.run(post_all(service.url, bodies))]
    assert [a["reward"] for a in answers] == [0.0, 0.0, 0.0]
    assert [a["mask"] for a in answers] == [False] * 3 and all(a["masked"] for a in answers)
    assert "masked with their group" in answers[0]["notes"][-1] and answers[1]["cause"].startswith("invalid verdict")


def test_complete_groups_wait_for_admission_instead_of_answering_503(start_service):
    service = start_service(config=ServiceConfig(max_pending=1))
    bodies = [member(g, group=f"g{k}", size=3) for k in range(4) for g in (30 + k, 120 + k, 220 - k)]
    answers = asyncio.run(post_all(service.url, bodies))
    assert [a.status_code for a in answers] == [200] * 12
    assert service.vlm.requests == 12
