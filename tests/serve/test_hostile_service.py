"""Issue 10: the reward service in front of a VLM that sends every kind of hostile answer.

Each answer gives HTTP 200 with a verdict (never a 500), responses are valid UTF-8 JSON of
bounded size, and in ``/v1/group_rewards`` a bad pair masks its group without failing the
request.
"""

from __future__ import annotations

import httpx

from arrpo.testing.hostile import CASES, GOOD, case_of
from arrpo.testing.scripted_server import ChatRequest, Reply
from tests.serve.helpers import b64_png

#: Images of this gray level draw the hostile answer in group requests; other pairs get GOOD.
POISON_GRAY = 77
MAX_RESPONSE_BYTES = 2_000_000


def poison_pairs_with_gray(request: ChatRequest) -> Reply:
    name = case_of(request)
    if name in CASES and (
        "group" not in request.text or any(im.getpixel((0, 0))[0] == POISON_GRAY for im in request.images())
    ):
        return CASES[name][0]()
    return Reply(text=GOOD)


def test_service_answers_200_to_every_hostile_answer(start_service):
    service = start_service(poison_pairs_with_gray, retries=1)
    statuses: dict[str, list[int]] = {}
    for name, (_, can_be_valid) in CASES.items():
        compare = httpx.post(service.url + "/v1/compare", timeout=120, json={
            "prompt": f"case-{name}", "image_a": b64_png(20), "image_b": b64_png(200), "order": "both", "id": name})
        group = httpx.post(service.url + "/v1/group_rewards", timeout=120, json={
            "prompt": f"group case-{name}", "images": [b64_png(20), b64_png(200), b64_png(POISON_GRAY)],
            "order": "given"})
        statuses[name] = [compare.status_code, group.status_code]
        for response in (compare, group):
            assert len(response.content) < MAX_RESPONSE_BYTES, (name, len(response.content))
            response.content.decode("utf-8")
        if compare.status_code != 200 or group.status_code != 200:
            continue
        assert compare.json()["id"] == name
        verdict = compare.json()["verdict"]
        assert can_be_valid or verdict["winner"] == "invalid", (name, verdict)
        data = group.json()
        assert data["n_pairs"] == 3, (name, data)
        if not can_be_valid:
            assert data["masked"] and data["n_invalid"] == 2 and data["mask"] == [False] * 3, (name, data)
            assert data["pairs"][0]["verdict"]["winner"] == "B"  # the clean pair was still judged
    assert {name: codes for name, codes in statuses.items() if codes != [200, 200]} == {}
    assert httpx.get(service.url + "/health").json()["status"] == "ok"
    metrics = httpx.get(service.url + "/metrics").text
    assert 'status="500"' not in metrics
