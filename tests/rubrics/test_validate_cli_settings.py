"""``arrpo rubric validate``'s judge options reach every judge of the comparison: the run's
``judges.yaml`` (the record ``arrpo eval`` reruns) holds them."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from arrpo.cli import app
from arrpo.judge_settings import AskSettings
from arrpo.rubric import Rubric


def test_judge_options_of_rubric_validate_are_the_judges_settings(seed_dir, seeing, tmp_path):
    _, server = seeing()
    seeds = seed_dir(["first", "first"])
    rubric = Rubric.from_criteria(["The image is bright and evenly lit."], task="t2i").save(tmp_path / "rubric.json")
    out = tmp_path / "v"
    result = CliRunner().invoke(app, [
        "rubric", "validate", str(rubric), "--pairs", str(seeds), "--against", "direct", "--out", str(out),
        "--endpoint", server.base_url, "--model", "seeing", "--no-cache", "--bootstrap", "0",
        "--temperature", "0.5", "--max-tokens", "512", "--parse-retries", "2", "--prompt-layout", "cached",
        "--max-answer-chars", "900",
    ], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    expected = AskSettings(temperature=0.5, max_tokens=512, parse_retries=2, prompt_layout="cached",
                           max_answer_chars=900).model_dump(mode="json")
    judges = yaml.safe_load((out / "judges.yaml").read_text())["judges"]
    assert len(judges) == 2
    for judge in judges:
        assert {key: judge[key] for key in expected} == expected, judge["name"]
