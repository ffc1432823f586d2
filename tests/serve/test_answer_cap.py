"""``max_answer_chars`` of the reward service (``arrpo serve --max-answer-chars``): how much of a
model answer its verdicts keep."""

from __future__ import annotations

import json

import httpx
import pytest

from arrpo.errors import ConfigError
from arrpo.judge_settings import JudgeSettings
from arrpo.server import ServiceConfig
from arrpo.testing.scripted_server import Reply
from tests.serve.helpers import b64_png

LONG_REASON = "brighter " * 2000


def long_answer(request) -> Reply:
    return Reply(text=json.dumps({"rank": [1, 2], "reason": LONG_REASON}))


@pytest.mark.parametrize("limit", [300, None])
def test_service_verdicts_keep_at_most_max_answer_chars(start_service, limit):
    service = start_service(long_answer, config=ServiceConfig(judge=JudgeSettings(max_answer_chars=limit)))
    response = httpx.post(service.url + "/v1/compare", timeout=60, json={
        "prompt": "a lamp", "image_a": b64_png(200), "image_b": b64_png(20), "order": "given"})
    assert response.status_code == 200, response.text
    verdict = response.json()["verdict"]
    assert verdict["winner"] == "A"
    if limit is None:
        assert verdict["reason"] == LONG_REASON
    else:
        assert len(verdict["reason"]) < limit + 60 and "characters cut" in verdict["reason"]
        assert len(verdict["answers"][0]["raw"]) < limit + 60


@pytest.mark.parametrize("value", [0, -5, True, "100"])
def test_a_bad_max_answer_chars_is_refused_at_start(value):
    with pytest.raises(ConfigError, match=r"^reward service settings: judge\.max_answer_chars: [^\n]+$"):
        ServiceConfig(judge={"max_answer_chars": value})


def test_arrpo_serve_passes_max_answer_chars_to_the_service(monkeypatch):
    from typer.testing import CliRunner

    import arrpo.server
    from arrpo.cli import app

    seen = {}
    real_create_app = arrpo.server.create_app

    def create_app(backend, config, **kwargs):
        seen["config"] = config
        seen["app"] = real_create_app(backend, config, **kwargs)
        return seen["app"]

    monkeypatch.setattr(arrpo.server, "create_app", create_app)
    monkeypatch.setattr(arrpo.server, "run_server", lambda *args, **kwargs: None)
    env = {"ARRPO_SERVE_TOKEN": "", "ARRPO_ENDPOINT": ""}
    args = ["serve", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--no-cache"]
    result = CliRunner().invoke(app, [*args, "--max-answer-chars", "500"], env=env)
    assert result.exit_code == 0, result.output
    assert seen["config"].judge.max_answer_chars == 500
    assert seen["app"].state.service.judges["given"].settings.max_answer_chars == 500
    assert CliRunner().invoke(app, args, env=env).exit_code == 0
    assert seen["config"].judge.max_answer_chars == 16_000  # the default
    assert CliRunner().invoke(app, [*args, "--max-answer-chars", "0"], env=env).exit_code == 2
