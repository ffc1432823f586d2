"""``arrpo train`` refuses, before loading any model, a config that is not YAML, an output folder
that is a file and prompt files that are empty or not UTF-8 (exit 2, the file named)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from arrpo.cli import app

runner = CliRunner()


def _train(tmp_path, *extra):
    # the pipeline folder does not exist: reaching the model loader would give another message
    return runner.invoke(app, ["train", "--preset", "tiny-cpu", "--pretrained", str(tmp_path / "no-pipeline"), *extra],
                         env={"COLUMNS": "300"})


def test_a_config_that_is_not_yaml(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("preset: tiny-cpu\nmodel: [1, 2\n")
    result = runner.invoke(app, ["train", "--config", str(config)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "cfg.yaml" in result.output and isinstance(result.exception, SystemExit)


def test_an_output_dir_that_is_a_file(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red apple\n")
    taken = tmp_path / "taken"
    taken.write_text("keep")
    result = _train(tmp_path, "--prompts", str(prompts), "--out", str(taken))
    assert result.exit_code == 2, result.output
    assert "is a file" in result.output and "no-pipeline" not in result.output and taken.read_text() == "keep"


@pytest.mark.parametrize("content", [b"", b"\n  \n", b"a\xff\xfe\n"])
def test_unusable_prompt_files(tmp_path, content):
    prompts = tmp_path / "p.txt"
    prompts.write_bytes(content)
    result = _train(tmp_path, "--prompts", str(prompts), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    text = result.output.replace("\n", "")
    assert "p.txt" in text and "no-pipeline" not in text
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "sample"])
@pytest.mark.parametrize(("body", "expected"), [
    ("trian: {iterations: 2}\n", "trian: unknown key"),
    ("reward: {win: -1}\n", "reward: win + lose must be positive"),
    ("train: {iterations: many}\n", "train.iterations: Input should be a valid integer"),
])
def test_a_bad_config_is_one_line_naming_the_key(tmp_path, command, body, expected):
    config = tmp_path / "cfg.yaml"
    config.write_text("preset: tiny-cpu\n" + body)
    extra = ["--lora", str(tmp_path), "--prompts", str(tmp_path / "p.txt"), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [command, "--config", str(config), *(extra if command == "sample" else [])],
                           env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "cfg.yaml" in lines[0] and expected in lines[0], result.output
    assert "errors.pydantic.dev" not in result.output
