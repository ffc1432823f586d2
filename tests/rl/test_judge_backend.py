"""Training's judge opens its VLM with the same BackendSettings and path as every other command."""

import asyncio
import json

import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from arrpo.images import load_image
from arrpo.rl.config import JudgeConfig, build_config
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


def test_old_flat_judge_keys_still_load():
    cfg = build_config({"judge": {"endpoint": "http://h:8000/v1", "model": "q", "api_key_env": "K",
                                  "max_concurrency": 4, "timeout": 30, "max_retries": 2, "cache_path": "c.sqlite"}})  # fmt: skip
    b = cfg.judge.backend
    assert (b.endpoint, b.model, b.api_key_env, b.max_concurrency, b.timeout, b.max_retries, b.cache_path) == (
        "http://h:8000/v1", "q", "K", 4, 30.0, 2, "c.sqlite")  # fmt: skip


def test_mixed_or_unknown_backend_keys_are_refused():
    with pytest.raises(ValidationError, match=r"belong under judge.backend"):
        build_config({"judge": {"endpoint": "http://h/v1", "backend": {"model": "q"}}})
    with pytest.raises(ValidationError, match="extra_bodyy"):
        build_config({"judge": {"backend": {"extra_bodyy": {}}}})


def test_example_presets_load():
    from pathlib import Path

    from arrpo.rl.config import load_config

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
