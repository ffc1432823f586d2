"""The service's endpoints through real HTTP: verdicts, group rewards, rubrics, health, metrics, docs."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from arrpo.rubric import Rubric, Theme
from arrpo.server import ServiceConfig
from tests.serve.helpers import b64_png


def post(service, path: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(service.url + path, json=body, timeout=30, **kwargs)


@pytest.mark.parametrize("order", ["given", "random", "both"])
@pytest.mark.parametrize(("a", "b", "winner"), [(200, 50, "A"), (50, 200, "B")])
def test_compare_returns_the_judges_verdict(service, order, a, b, winner):
    response = post(service, "/v1/compare", {
        "prompt": "a bright square", "image_a": b64_png(a), "image_b": b64_png(b), "order": order, "id": "x1",
    })
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["id"] == "x1"
    assert data["verdict"]["winner"] == winner
    assert data["verdict"]["reason"] == "the brighter image wins"
    assert len(data["verdict"]["answers"]) == (2 if order == "both" else 1)
    assert data["rubric"] == {"mode": "none", "sha256": None, "cached": None}


def test_compare_accepts_data_urls_and_edit_sources(service):
    response = post(service, "/v1/compare", {
        "prompt": "make it brighter", "image_a": "data:image/png;base64," + b64_png(10),
        "image_b": b64_png(240), "source": b64_png(100),
    })
    assert response.status_code == 200, response.text
    assert response.json()["verdict"]["winner"] == "B"
    sent = service.vlm.seen[-1]
    assert len(sent.image_bytes) == 3  # source, then the two edits
    assert "Image BASE" in sent.text


def test_group_rewards_ranks_by_all_pairs(service):
    grays = [90, 250, 10, 170]  # order of quality: 1 > 3 > 0 > 2
    response = post(service, "/v1/group_rewards", {
        "prompt": "bright", "images": [b64_png(g) for g in grays], "order": "given",
    })
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["n_pairs"] == 6 and data["n_valid"] == 6 and not data["masked"]
    assert data["win_rates"] == pytest.approx([1 / 3, 1.0, 0.0, 2 / 3])
    assert data["rewards"] == pytest.approx([-0.1 + 1.1 * r for r in (1 / 3, 1.0, 0.0, 2 / 3)])
    assert data["mask"] == [True] * 4
    assert [(p["i"], p["j"]) for p in data["pairs"]] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert data["pairs"][0]["verdict"]["winner"] == "B"
    assert service.vlm.requests == 6


@pytest.mark.parametrize(("preset", "extra", "expected"), [
    ("official", {}, [1.0, -0.1]),
    ("official", {"win": 2.0, "lose": 0.5}, [2.0, -0.5]),
    ("symmetric", {"scale": 0.3}, [0.3, -0.3]),
])
def test_group_of_two_presets(service, preset, extra, expected):
    response = post(service, "/v1/group_rewards", {
        "prompt": "p", "images": [b64_png(200), b64_png(20)], "preset": preset, **extra,
    })
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == pytest.approx(expected)


def test_zscore_preset_advantages(service):
    response = post(service, "/v1/group_rewards", {
        "prompt": "p", "images": [b64_png(g) for g in (10, 100, 200)], "preset": "zscore",
    })
    data = response.json()
    assert data["rewards"] == pytest.approx([0.0, 0.5, 1.0])
    assert sum(data["advantages"]) == pytest.approx(0.0, abs=1e-6)
    assert data["advantages"][2] > data["advantages"][1] > data["advantages"][0]


def test_invalid_answer_masks_the_group(start_service):
    from arrpo.testing.scripted_server import Reply

    service = start_service(lambda request: Reply(text="I cannot compare these."))
    response = post(service, "/v1/group_rewards", {"prompt": "p", "images": [b64_png(1), b64_png(2)]})
    assert response.status_code == 200
    data = response.json()
    assert data["masked"] and data["rewards"] == [0.0, 0.0] and data["mask"] == [False, False]
    assert data["n_invalid"] == 1
    assert data["pairs"][0]["verdict"]["winner"] == "invalid"
    assert data["pairs"][0]["verdict"]["invalid_reason"]


def test_task_rubric_from_config_conditions_the_judge(start_service, tmp_path):
    rubric = Rubric(themes=[Theme(theme="Brightness is everything", tips=["prefer light"])], task="t2i")
    path = rubric.save(tmp_path / "t2i.json")
    service = start_service(config=ServiceConfig(task_rubrics={"t2i": Rubric.load(path)}))
    response = post(service, "/v1/compare", {"prompt": "p", "image_a": b64_png(1), "image_b": b64_png(2)})
    assert response.status_code == 200
    assert response.json()["rubric"]["mode"] == "task"
    assert "Brightness is everything" in service.vlm.seen[-1].text
    # 'none' asks the direct judge even though a task rubric exists
    response = post(service, "/v1/compare", {
        "prompt": "p", "image_a": b64_png(1), "image_b": b64_png(2), "rubric": "none"})
    assert response.json()["rubric"]["mode"] == "none"
    assert "Brightness is everything" not in service.vlm.seen[-1].text
    # no edit rubric configured: asking for it is a clear 501
    response = post(service, "/v1/compare", {
        "prompt": "p", "image_a": b64_png(1), "image_b": b64_png(2), "source": b64_png(3), "rubric": "task"})
    assert response.status_code == 501
    assert "no rubric for task 'edit'" in response.json()["error"]["message"]


def test_inline_rubric(service):
    response = post(service, "/v1/compare", {
        "prompt": "p", "image_a": b64_png(1), "image_b": b64_png(2),
        "rubric_inline": {"themes": [{"theme": "Inline theme here", "tips": []}]},
    })
    assert response.status_code == 200, response.text
    assert response.json()["rubric"]["mode"] == "inline"
    assert "Inline theme here" in service.vlm.seen[-1].text


def test_prompt_rubrics_without_a_writer_are_501(service):
    response = post(service, "/v1/compare", {
        "prompt": "p", "image_a": b64_png(1), "image_b": b64_png(2), "rubric": "prompt"})
    assert response.status_code == 501
    error = response.json()["error"]
    assert error["code"] == "prompt_rubrics_unavailable"
    assert "--prompt-rubrics" in error["message"]
    assert httpx.get(service.url + "/health").json()["prompt_rubrics"] is False


def test_prompt_rubrics_are_generated_once_and_cached(start_service):
    calls: list[tuple[str, str]] = []

    async def writer(task: str, prompt: str, source) -> Rubric:
        calls.append((prompt, task))
        await asyncio.sleep(0.2)  # concurrent requests must share this one generation
        return Rubric(themes=[Theme(theme=f"Rubric for {prompt}")], scope="prompt", prompt=prompt)

    service = start_service(writer=writer)
    body = {"prompt": "a red fox", "image_a": b64_png(1), "image_b": b64_png(2), "rubric": "prompt"}

    async def burst():
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(service.url + "/v1/compare", json=body) for _ in range(5)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 5
    assert calls == [("a red fox", "t2i")]
    assert "Rubric for a red fox" in service.vlm.seen[-1].text
    again = post(service, "/v1/compare", body).json()
    assert again["rubric"]["mode"] == "prompt" and again["rubric"]["cached"] is True
    assert len(calls) == 1
    post(service, "/v1/compare", {**body, "prompt": "a blue fox"})
    assert len(calls) == 2
    metrics = httpx.get(service.url + "/metrics").text
    assert 'arrpo_prompt_rubric_cache_total{result="miss"} 2' in metrics


def test_prompt_rubrics_kept_in_memory_are_bounded_by_the_cache_size(start_service):
    calls: list[str] = []

    async def writer(task: str, prompt: str, source) -> Rubric:
        calls.append(prompt)
        return Rubric(themes=[Theme(theme=f"Rubric for {prompt}")], scope="prompt", prompt=prompt)

    service = start_service(writer=writer, config=ServiceConfig(prompt_rubric_cache_size=2))
    for prompt in ("a", "b", "a", "c", "a", "b"):  # "b" is the least recently used when "c" comes
        body = {"prompt": prompt, "image_a": b64_png(1), "image_b": b64_png(2), "rubric": "prompt"}
        assert post(service, "/v1/compare", body).status_code == 200
    assert calls == ["a", "b", "c", "b"]


def test_failing_rubric_writer_is_502_and_not_cached(start_service):
    attempts = []

    async def writer(task: str, prompt: str, source) -> Rubric:
        attempts.append(prompt)
        raise RuntimeError("backend down")

    service = start_service(writer=writer)
    body = {"prompt": "x", "image_a": b64_png(1), "image_b": b64_png(2), "rubric": "prompt"}
    for _ in range(2):
        response = post(service, "/v1/compare", body)
        assert response.status_code == 502
        assert "backend down" in response.json()["error"]["message"]
    assert len(attempts) == 2


def test_health_metrics_and_docs(service):
    post(service, "/v1/compare", {"prompt": "p", "image_a": b64_png(200), "image_b": b64_png(2)})
    post(service, "/v1/compare", {"prompt": "p", "image_a": "nope!", "image_b": b64_png(2)})
    health = httpx.get(service.url + "/health").json()
    assert health["status"] == "ok" and health["model"].endswith("#scripted")
    assert health["in_flight"] == 0 and health["capacity"] == 64
    response = httpx.get(service.url + "/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'arrpo_requests_total{endpoint="/v1/compare",status="200"} 1' in text
    assert 'arrpo_requests_total{endpoint="/v1/compare",status="422"} 1' in text
    assert 'arrpo_verdicts_total{winner="A"} 1' in text
    assert 'arrpo_request_duration_seconds_bucket{endpoint="/v1/compare",le="+Inf"} 2' in text
    assert "arrpo_backend_requests_total 1" in text
    assert "arrpo_backend_errors_total 0" in text
    assert "arrpo_backend_cache_hits_total 0" in text
    assert 'arrpo_rejected_total{reason="saturated"} 0' in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))
    schema = httpx.get(service.url + "/openapi.json").json()
    assert {"/v1/compare", "/v1/group_rewards", "/health", "/metrics"} <= set(schema["paths"])
    assert "503" in schema["paths"]["/v1/compare"]["post"]["responses"]
    assert httpx.get(service.url + "/docs").status_code == 200


def test_default_writer_writes_prompt_rubrics_with_the_vlm(start_service, make_image):
    """--prompt-rubrics end to end: the real RubricWriter asks the VLM for a rubric (with the
    source image for edits), the judge request then carries it."""
    from arrpo.server.rubrics import default_prompt_writer
    from arrpo.testing.scripted_server import Reply
    from tests.serve.helpers import brighter_wins

    def handler(request):
        if "Write an evaluation rubric" in request.text:
            theme = "Edit keeps the source" if len(request.image_bytes) == 1 else "Caption objects present"
            return Reply(text=f'{{"themes": [{{"theme": "{theme}", "tips": ["look closely"]}}]}}')
        return brighter_wins(request)

    service = start_service(handler)
    service.state.rubrics.writer = default_prompt_writer(service.state.backend)
    bright, dark, src = make_image((230, 230, 230)), make_image((20, 20, 20)), make_image((0, 0, 200))
    t2i = httpx.post(service.url + "/v1/compare", json={
        "prompt": "a lamp", "image_a": dark.base64, "image_b": bright.base64, "rubric": "prompt"}, timeout=30)
    assert t2i.status_code == 200, t2i.text
    assert t2i.json()["verdict"]["winner"] == "B" and t2i.json()["rubric"]["mode"] == "prompt"
    edit = httpx.post(service.url + "/v1/compare", json={
        "prompt": "brighten", "image_a": bright.base64, "image_b": dark.base64, "source": src.base64,
        "rubric": "prompt"}, timeout=30)
    assert edit.status_code == 200, edit.text
    judged = [r for r in service.vlm.seen if "Evaluation Rubrics" in r.text]
    assert "Caption objects present" in judged[0].text and "Edit keeps the source" in judged[-1].text
    writes = [r for r in service.vlm.seen if "Evaluation Rubrics" not in r.text]
    assert len(writes) == 2 and writes[-1].image_bytes == [src.data]


def test_health_reports_the_request_limits(start_service):
    from arrpo.client import RewardClient

    service = start_service(config=ServiceConfig(max_images=5, max_body_bytes=123_456, max_prompt_chars=99,
                                                 pairing="tournament", judge={"order": "both"}))
    limits = httpx.get(service.url + "/health").json()["limits"]
    assert limits == {"max_images": 5, "max_body_bytes": 123_456, "max_image_pixels": 4096 * 4096,
                      "max_prompt_chars": 99, "pairing": "tournament", "order": "both"}
    with RewardClient(service.url) as client:
        assert client.limits().max_images == 5 and client.limits().pairing == "tournament"
        assert client.limits().order == "both"


def test_a_group_holds_the_judge_calls_the_protocol_says_it_costs(start_service):
    import threading
    import time

    from arrpo.server.protocol import judge_calls

    release = threading.Event()

    def held(request):
        release.wait(30)
        from tests.serve.helpers import brighter_wins

        return brighter_wins(request)

    service = start_service(held, concurrency=16)
    body = {"prompt": "p", "images": [b64_png(10), b64_png(90), b64_png(200)], "order": "both"}
    answer: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answer.append(post(service, "/v1/group_rewards", body)))
    sender.start()
    deadline = time.monotonic() + 30
    seen = 0
    while time.monotonic() < deadline and seen == 0:
        seen = httpx.get(service.url + "/health").json()["in_flight"]
        time.sleep(0.02)
    release.set()
    sender.join(30)
    assert seen == judge_calls("both", 3) == 6
    assert answer and answer[0].status_code == 200
