"""``pairing: tournament`` (and ``random_pairs``) through the service's public ways in: HTTP
``/v1/group_rewards``, ``/v1/group_member``, Flow-Factory's ``/compute``, and the adapters'
:class:`~arrpo.integrations.groups.GroupScorer` through the real client. The scripted VLM always
prefers the brighter image, so the judge is always right and its answer depends on the images."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx
import pytest

from arrpo.server import ServiceConfig
from arrpo.tournament import default_rounds, vlm_calls_per_group
from tests.serve.helpers import b64_png, brighter_wins, png_bytes


def post(service, body: dict, path: str = "/v1/group_rewards") -> httpx.Response:
    return httpx.post(service.url + path, json=body, timeout=60)


def grays(n: int, seed: int = 0) -> list[int]:
    return random.Random(seed).sample(range(5, 250), n)


def group(n: int, **extra) -> dict:
    return {"prompt": "a bright square", "images": [b64_png(g) for g in grays(n)], **extra}


def played(data: dict) -> list[tuple[int, int]]:
    return [(p["i"], p["j"]) for p in data["pairs"]]


def concordance(values: list[float], truth: list[int]) -> float:
    """Kendall's τ-a of ``values`` against ``truth`` (ties in ``values`` count 0)."""
    n, total = len(values), 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = values[i] - values[j], truth[i] - truth[j]
            total += (a > 0) - (a < 0) if b > 0 else (a < 0) - (a > 0)
    return total / (n * (n - 1) / 2)


@pytest.mark.parametrize("order", ["given", "both"])
@pytest.mark.parametrize("n", [2, 4, 16, 24])
def test_a_tournament_judges_its_played_pairs_and_recovers_the_order(start_service, n, order):
    service = start_service(config=ServiceConfig(max_images=24))
    truth = grays(n)
    response = post(service, group(n, pairing="tournament", order=order, seed=3))
    assert response.status_code == 200, response.text
    data = response.json()
    pairs = played(data)
    assert data["pairing"] == "tournament" and data["n_pairs"] == len(pairs) == default_rounds(n) * (n // 2)
    calls = len(pairs) * (2 if order == "both" else 1)
    assert service.vlm.requests == calls <= vlm_calls_per_group(n, "tournament", order)
    for (i, j), pair in zip(pairs, data["pairs"], strict=True):  # the judge is always right
        assert pair["verdict"]["winner"] == ("A" if truth[i] > truth[j] else "B")
    best, worst = truth.index(max(truth)), truth.index(min(truth))
    assert data["rewards"][best] == pytest.approx(1.0) and data["rewards"][worst] == pytest.approx(-0.1)
    assert all(data["mask"]) and not data["masked"]
    assert concordance(data["rewards"], truth) >= (1.0 if n <= 4 else 0.8)
    again = post(service, group(n, pairing="tournament", order=order, seed=3)).json()
    assert again["rewards"] == data["rewards"] and played(again) == pairs  # deterministic for a seed


def test_another_seed_plays_another_first_round(service):
    first = played(post(service, group(16, pairing="tournament", seed=1)).json())[:8]
    other = played(post(service, group(16, pairing="tournament", seed=2)).json())[:8]
    assert first != other


def test_a_tournament_costs_a_third_of_all_pairs_at_16(service):
    post(service, group(16, pairing="all_pairs", order="given"))
    assert service.vlm.requests == 120
    post(service, group(16, pairing="tournament", order="given"))
    assert service.vlm.requests == 120 + 40


def test_rounds_and_random_pairs(service):
    data = post(service, group(8, pairing="tournament", tournament_rounds=2)).json()
    assert data["n_pairs"] == 8 and service.vlm.requests == 8
    matched = post(service, group(6, pairing="random_pairs", seed=5)).json()
    pairs = played(matched)
    assert sorted(k for p in pairs for k in p) == list(range(6)) and matched["pairing"] == "random_pairs"
    assert played(post(service, group(6, pairing="random_pairs", seed=5)).json()) == pairs


def test_the_servers_default_pairing_applies_and_is_advertised(start_service):
    service = start_service(config=ServiceConfig(pairing="tournament"))
    assert httpx.get(service.url + "/health").json()["limits"]["pairing"] == "tournament"
    data = post(service, group(16)).json()
    assert data["pairing"] == "tournament" and service.vlm.requests == 40
    assert post(service, group(4, pairing="all_pairs")).json()["n_pairs"] == 6  # a request's own wins


BAD = [
    ("a tournament of one", group(1, pairing="tournament"), "images"),
    ("no rounds", group(4, pairing="tournament", tournament_rounds=0), "tournament_rounds"),
    ("unknown pairing", group(4, pairing="swiss"), "'all_pairs', 'random_pairs' or 'tournament'"),
    ("odd random pairs", group(3, pairing="random_pairs"), "random_pairs needs an even number of images, got 3"),
    ("rounds without a tournament", group(4, pairing="all_pairs", tournament_rounds=2),
     "applies to pairing 'tournament' only"),
    ("more rounds than a round robin", group(16, pairing="tournament", tournament_rounds=10**9),
     "a round robin takes 15"),
    ("a seed over 64 bits", group(4, pairing="tournament", seed=10**30), "seed"),
]


@pytest.mark.parametrize(("name", "body", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_pairings_are_refused_before_any_judging(service, name, body, words):
    response = post(service, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert words in response.json()["error"]["message"]
    assert service.vlm.requests == 0


def test_a_default_pairing_that_does_not_fit_the_request_is_a_422(start_service):
    service = start_service(config=ServiceConfig(pairing="random_pairs"))
    response = post(service, group(3))
    assert response.status_code == 422 and "server's default pairing" in response.json()["error"]["message"]
    response = post(service, group(4, tournament_rounds=2))
    assert response.status_code == 422 and "'random_pairs' (the server's default" in response.json()["error"]["message"]
    assert service.vlm.requests == 0


def test_admission_holds_the_tournaments_calls_not_all_pairs(start_service):
    release = threading.Event()

    def held(request):
        release.wait(30)
        return brighter_wins(request)

    service = start_service(held, concurrency=64)
    answer: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answer.append(post(service, group(16, pairing="tournament", order="both"))))
    sender.start()
    deadline, seen = time.monotonic() + 30, 0
    while time.monotonic() < deadline and seen == 0:
        seen = httpx.get(service.url + "/health").json()["in_flight"]
        time.sleep(0.02)
    release.set()
    sender.join(60)
    assert seen == vlm_calls_per_group(16, "tournament", "both") == 80
    assert answer and answer[0].status_code == 200


def test_gathered_members_are_judged_by_their_pairing(service):
    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            return list(await asyncio.gather(*(client.post("/v1/group_member", json={
                "prompt": "a cat", "image": b64_png(g), "group": "g16", "group_size": 16, "wait": 30,
                "pairing": "tournament", "seed": 1,
            }) for g in grays(16))))

    answers = [r.json() for r in asyncio.run(send())]
    assert {a["n_pairs"] for a in answers} == {40} and service.vlm.requests == 40
    truth = grays(16)
    assert answers[truth.index(max(truth))]["reward"] == pytest.approx(1.0)
    anchored = post(service, {"prompt": "a cat", "image": b64_png(9), "group": "a", "group_size": 1,
                              "anchor": b64_png(1), "pairing": "tournament"}, "/v1/group_member")
    assert anchored.status_code == 422 and "anchor" in anchored.json()["error"]["message"]


def test_flow_factory_groups_use_the_servers_pairing(start_service):
    service = start_service(config=ServiceConfig(pairing="tournament"))
    body = {"prompt": ["a cat"] * 16, "image": [b64_png(g) for g in grays(16)]}
    answer = httpx.post(f"{service.url}/flow-factory/16/compute", json=body, timeout=60).json()
    assert answer["error"] is None and len(answer["rewards"]) == 16 and service.vlm.requests == 40
    truth = grays(16)
    assert answer["rewards"][truth.index(max(truth))] == pytest.approx(1.0)


@pytest.mark.parametrize("named", [True, False])
def test_the_adapters_scorer_sends_the_pairing_and_sizes_by_it(start_service, named):
    from arrpo.integrations.groups import GroupScorer

    service = start_service(config=ServiceConfig(pairing="all_pairs" if named else "tournament"))
    options = {"pairing": "tournament", "tournament_rounds": 3} if named else {}
    scorer = GroupScorer(service.url, samples_per_prompt=16, **options)
    truth = grays(16)
    out = scorer.score_batch([png_bytes(g) for g in truth], ["a cat"] * 16)
    assert service.vlm.requests == (24 if named else 40)
    assert scorer.judge.units(16) == (24 if named else 40)
    assert out.rewards[truth.index(max(truth))] == pytest.approx(1.0) and all(out.mask)


def test_the_adapters_refuse_a_bad_pairing_before_any_request():
    from arrpo.integrations.groups import GroupScorer

    for options, words in (({"pairing": "swiss"}, "pairing"), ({"pairing": "tournament", "tournament_rounds": 0},
                                                                 "tournament_rounds")):
        with pytest.raises(ValueError, match=words):
            GroupScorer("http://reward.test", **options)
    # rounds are checked against the group the adapter was told of (k = 4: a round robin is 3 rounds)
    with pytest.raises(ValueError, match="a round robin takes 3"):
        GroupScorer("http://reward.test", samples_per_prompt=4, pairing="tournament", tournament_rounds=4)
    GroupScorer("http://reward.test", samples_per_prompt=4, pairing="tournament", tournament_rounds=3)


def test_the_adapters_size_by_the_services_default_order(start_service):
    """A request naming no order is judged under the service's (/health limits.order): with
    --order both a group of 4 costs 12 calls, and the adapter reserves 12, not 6."""
    from arrpo.integrations.groups import GroupScorer

    service = start_service(config=ServiceConfig(judge={"order": "both"}))
    scorer = GroupScorer(service.url, samples_per_prompt=4)
    truth = grays(4)
    out = scorer.score_batch([png_bytes(g) for g in truth], ["a cat"] * 4)
    assert service.vlm.requests == 12 and scorer.judge.units(4) == 12
    assert out.rewards[truth.index(max(truth))] == pytest.approx(1.0) and all(out.mask)
