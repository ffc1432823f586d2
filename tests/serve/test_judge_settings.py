"""The reward service's judge settings (``ServiceConfig.judge``, ``arrpo serve`` flags) reach every
model request; a request's ``order`` replaces only the order."""

from __future__ import annotations

import httpx
import pytest

from arrpo.judge_settings import JudgeSettings
from arrpo.server import ServiceConfig
from arrpo.testing.scripted_server import Reply
from tests.serve.helpers import b64_png


def _undecided(request) -> Reply:
    return Reply(text="Both images are lovely.")


def test_service_judge_settings_reach_the_model_and_a_request_order_replaces_only_the_order(start_service):
    settings = JudgeSettings(order="both", temperature=0.6, max_tokens=60, parse_retries=0)
    service = start_service(_undecided, config=ServiceConfig(judge=settings))
    body = {"prompt": "a lamp", "image_a": b64_png(200), "image_b": b64_png(20)}
    default = httpx.post(service.url + "/v1/compare", json=body, timeout=60)
    assert default.status_code == 200, default.text
    assert [a["order"] for a in default.json()["verdict"]["answers"]] == ["AB", "BA"]  # the service's order
    assert len(service.vlm.seen) == 2  # no re-ask: parse_retries 0
    given = httpx.post(service.url + "/v1/compare", json={**body, "order": "given"}, timeout=60)
    assert [a["order"] for a in given.json()["verdict"]["answers"]] == ["AB"]
    assert len(service.vlm.seen) == 3
    assert {(r.body["temperature"], r.body["max_tokens"]) for r in service.vlm.seen} == {(0.6, 60)}
    judges = service.state.judges
    assert judges["given"].settings == settings.model_copy(update={"order": "given"})


def test_arrpo_serve_flags_become_the_service_judge_settings(monkeypatch):
    from typer.testing import CliRunner

    import arrpo.server
    from arrpo.cli import app

    seen = {}
    monkeypatch.setattr(arrpo.server, "create_app", lambda backend, config, **kwargs: seen.setdefault("config", config))
    monkeypatch.setattr(arrpo.server, "run_server", lambda *args, **kwargs: None)
    result = CliRunner().invoke(app, ["serve", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--no-cache",
                                      "--order", "both", "--max-answer-chars", "700"],
                                env={"ARRPO_SERVE_TOKEN": "", "ARRPO_ENDPOINT": ""})
    assert result.exit_code == 0, result.output
    assert seen["config"].judge == JudgeSettings(order="both", max_answer_chars=700)


def _serve_capturing(monkeypatch, *args: str):
    """Run ``arrpo serve ARGS`` with the app and server replaced: (result, what create_app got)."""
    from typer.testing import CliRunner

    import arrpo.server
    from arrpo.cli import app

    seen = {}
    monkeypatch.setattr(arrpo.server, "create_app",
                        lambda backend, config, **kwargs: seen.update(backend=backend, config=config))
    monkeypatch.setattr(arrpo.server, "run_server", lambda *args, **kwargs: None)
    result = CliRunner().invoke(app, ["serve", *args], env={"ARRPO_SERVE_TOKEN": "", "ARRPO_ENDPOINT": ""})
    return result, seen


def test_every_judge_setting_given_to_arrpo_serve_reaches_the_service(monkeypatch):
    result, seen = _serve_capturing(
        monkeypatch, "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--no-cache",
        "--order", "both", "--on-disagree", "invalid", "--seed", "7", "--allow-ties", "--parse-retries", "3",
        "--temperature", "0.25", "--max-tokens", "300", "--prompt-layout", "cached", "--evidence", "ocr",
        "--ocr-policy", "tiebreak",
    )
    assert result.exit_code == 0, result.output
    assert seen["config"].judge == JudgeSettings(
        order="both", on_disagree="invalid", seed=7, allow_ties=True, parse_retries=3, temperature=0.25,
        max_tokens=300, prompt_layout="cached", evidence=("ocr",), ocr_policy="tiebreak",
    )
    assert seen["backend"] is not None


def test_an_evidence_only_arrpo_serve_opens_no_backend(monkeypatch):
    result, seen = _serve_capturing(monkeypatch, "--evidence", "ocr", "--evidence-only")  # no endpoint, no model
    assert result.exit_code == 0, result.output
    assert seen["backend"] is None and seen["config"].judge.evidence_only


@pytest.mark.parametrize(("args", "message"), [
    (["--evidence-only"], "evidence_only needs evidence"),
    (["--evidence", "ocr", "--evidence-only", "--prompt-rubrics"], "--prompt-rubrics needs a model"),
    (["--ocr-policy", "sideways"], "Invalid value for '--ocr-policy'"),
])
def test_arrpo_serve_refuses_unusable_judge_settings(monkeypatch, args, message):
    result, seen = _serve_capturing(monkeypatch, *args)
    assert result.exit_code == 2 and message in result.output and not seen


def test_arrpo_serve_bind_check_names_the_token_variable_given(monkeypatch):
    from typer.testing import CliRunner

    from arrpo.cli import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--token-env", "MY_TOKEN", "--endpoint",
                                      "http://127.0.0.1:9/v1", "--model", "m"],
                                env={"MY_TOKEN": "short", "ARRPO_SERVE_TOKEN": ""})
    assert result.exit_code == 2 and "$MY_TOKEN must be at least" in result.output
