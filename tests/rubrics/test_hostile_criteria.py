"""A generated criterion holding a lone surrogate (a JSON escape cut at max_tokens) is learned with
the surrogate replaced, instead of failing its pair on every rerun (the answer is cached)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from arrpo.cli import app

runner = CliRunner()


def test_criteria_with_lone_surrogates_are_learned(seed_dir, seeing, tmp_path):
    def generate(request, default):
        criteria = json.loads(default)["criteria"]
        criteria[0] = criteria[0].replace("bright", "bright @@")
        return json.dumps({"criteria": criteria}).replace("@@", "\\ud800")  # a JSON escape cut short

    _, server = seeing({"generate": generate})
    seeds = seed_dir(["first", "first", "refine"])
    out = tmp_path / "run" / "rubric.json"
    args = ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "2", "--t-max", "1", "--out", str(out),
            "--endpoint", server.base_url, "--model", "seeing", "--cache-path", str(tmp_path / "c.sqlite")]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "bright \ufffd" in out.read_text(encoding="utf-8")
