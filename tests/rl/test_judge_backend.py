"""Training's judge opens its VLM with the same BackendSettings and path as every other command."""

import asyncio
import json

import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from arrpo.images import load_image
from arrpo.judge_settings import JudgeSettings
from arrpo.rl.config import JudgeConfig, build_config, load_config
from arrpo.rl.judging import build_judge
from arrpo.schema import Comparison
from arrpo.testing.scripted_server import Reply, ScriptedVLMServer
from arrpo.vlm.base import BackendUnavailable


def _pair():
    a, b = (load_image(Image.new("RGB", (16, 16), c)) for c in ("red", "blue"))
    return Comparison(prompt="a red kite", image_a=a, image_b=b, id="0")


def test_json_mode_and_extra_body_reach_the_server(tmp_path):
    with ScriptedVLMServer(lambda req: Reply('{"rank": [2, 1], "reason": "second"}')) as server:
        cfg = build_config({"judge": {"order": "given", "backend": {
            "endpoint": server.base_url, "model": "scripted", "json_mode": "json_object", "cache": False,
            "extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}}})  # fmt: skip
        verdict = asyncio.run(build_judge(cfg.judge).judge(_pair()))
        (request,) = server.seen
    assert verdict.winner == "B"
    assert request.body["chat_template_kwargs"] == {"enable_thinking": False}
    assert request.body["response_format"] == {"type": "json_object"}


def test_named_but_unset_api_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ARRPO_TEST_KEY_UNSET", raising=False)
    cfg = JudgeConfig(backend={"endpoint": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "ARRPO_TEST_KEY_UNSET"})
    with pytest.raises(BackendUnavailable, match="ARRPO_TEST_KEY_UNSET is not set"):
        build_judge(cfg)


def test_api_key_from_the_named_variable_is_sent(monkeypatch):
    monkeypatch.setenv("ARRPO_TEST_KEY", "sk-test-123")
    with ScriptedVLMServer(lambda req: Reply('{"rank": [1, 2]}')) as server:
        cfg = JudgeConfig(order="given", backend={"endpoint": server.base_url, "model": "m", "cache": False,
                                                  "api_key_env": "ARRPO_TEST_KEY"})  # fmt: skip
        asyncio.run(build_judge(cfg).judge(_pair()))
        (request,) = server.seen
    assert request.headers.get("authorization") == "Bearer sk-test-123"


def test_train_cli_reports_an_unset_key_before_loading_the_model(tmp_path, monkeypatch):
    from arrpo.cli import app

    monkeypatch.delenv("ARRPO_TEST_KEY_UNSET", raising=False)
    config = tmp_path / "cfg.yaml"
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red apple\n")  # a usable prompts file: the unset key is what must stop the run
    config.write_text(
        f"preset: tiny-cpu\nmodel:\n  pretrained: /nonexistent/model\ndata:\n  prompts: {prompts}\n"
        "judge:\n  builtin: null\n  backend:\n    endpoint: http://127.0.0.1:9/v1\n    model: m\n"
        "    api_key_env: ARRPO_TEST_KEY_UNSET\n"
    )
    result = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "ARRPO_TEST_KEY_UNSET is not set" in " ".join(result.output.split())


def test_backend_keys_belong_under_judge_backend_and_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match=r"judge\.endpoint\n  Extra inputs are not permitted"):
        build_config({"judge": {"endpoint": "http://h/v1", "backend": {"model": "q"}}})
    with pytest.raises(ValidationError, match="extra_bodyy"):
        build_config({"judge": {"backend": {"extra_bodyy": {}}}})


def test_judge_settings_of_the_config_file_reach_the_training_judge(tmp_path):
    """temperature, max_tokens and parse_retries are set in judge: as in every other judge config."""
    with ScriptedVLMServer(lambda req: Reply("I cannot tell.")) as server:
        path = tmp_path / "cfg.yaml"
        path.write_text(
            "judge:\n  order: given\n  temperature: 0.6\n  max_tokens: 50\n  parse_retries: 2\n"
            f"  backend: {{endpoint: '{server.base_url}', model: m, cache: false, max_retries: 0}}\n"
        )
        cfg = load_config(path)
        verdict = asyncio.run(build_judge(cfg.judge).judge(_pair()))
        seen = [(r.body["temperature"], r.body["max_tokens"]) for r in server.seen]
    assert verdict.winner == "invalid" and verdict.answers[0].attempts == 3  # 1 + parse_retries
    assert seen == [(0.6, 50)] * 3
    assert JudgeConfig(order="both", on_disagree="first").judge_settings() == JudgeSettings(order="both", on_disagree="first")


@pytest.mark.parametrize(("judge", "message"), [
    ("  temprature: 0.5\n", "judge.temprature: unknown key"),
    ("  parse_retries: -1\n", "judge.parse_retries: Input should be greater than or equal to 0"),
    ("  on_disagree: coin\n", "judge.on_disagree: Input should be 'tie', 'invalid' or 'first'"),
])
def test_train_cli_refuses_bad_judge_settings_in_one_line(tmp_path, judge, message):
    from arrpo.cli import app

    path = tmp_path / "cfg.yaml"
    path.write_text("preset: tiny-cpu\njudge:\n" + judge)
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == f"error: {path}: {message}"


def test_example_presets_load():
    from pathlib import Path

    root = Path(__file__).parents[2] / "examples"
    for name in ("rpo-flux.yaml", "rpo-qwen-edit.yaml", "rpo-tiny-cpu.yaml"):
        cfg = load_config(root / name)
        assert json.loads(cfg.model_dump_json())  # serialisable (checkpoints write it)
    assert load_config(root / "rpo-flux.yaml").judge.backend.endpoint == "http://localhost:8000/v1"


def test_in_process_transformers_backend_judges(tmp_path_factory):
    """kind: transformers opens a local model in the training process (tiny random LLaVA)."""
    pytest.importorskip("transformers")
    from arrpo.testing.tiny_vlm import build_tiny_llava

    model_dir = build_tiny_llava(tmp_path_factory.mktemp("llava") / "model")
    cfg = JudgeConfig(order="given", backend={"kind": "transformers", "model": str(model_dir), "device": "cpu",
                                              "cache": False})  # fmt: skip
    judge = build_judge(cfg)
    verdict = asyncio.run(judge.judge(_pair()))
    assert verdict.answers and verdict.answers[0].raw is not None  # the local model answered (random text)
