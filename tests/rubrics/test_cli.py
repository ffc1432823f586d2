"""``arrpo rubric write | learn | show`` through the real command (typer's CliRunner)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from arrpo.cli import app
from arrpo.rubric import Rubric

from .conftest import write_png

runner = CliRunner()


def _backend(server, tmp_path):
    return ["--endpoint", server.base_url, "--model", "seeing", "--cache-path", str(tmp_path / "c.sqlite")]


def test_write_and_show(seeing, tmp_path):
    _, server = seeing()
    out = tmp_path / "t2i.json"
    result = runner.invoke(app, ["rubric", "write", "--task", "t2i", "--out", str(out), "--max-themes", "5",
                                 *_backend(server, tmp_path)])
    assert result.exit_code == 0, result.output
    assert Rubric.load(out).scope == "task"
    shown = runner.invoke(app, ["rubric", "show", str(out)])
    assert shown.exit_code == 0 and "Theme: Visual quality" in shown.output and "zero-shot" in shown.output
    as_json = runner.invoke(app, ["rubric", "show", str(out), "--json"])
    assert json.loads(as_json.output)["rendered"].startswith("Rubric 1:")

    source = write_png(tmp_path / "src.png", (1, 2, 3))
    prompt_out = tmp_path / "p.json"
    result = runner.invoke(app, ["rubric", "write", "--task", "edit", "--prompt", "remove the car", "--source",
                                 str(source), "--out", str(prompt_out), *_backend(server, tmp_path)])
    assert result.exit_code == 0, result.output
    assert Rubric.load(prompt_out).prompt == "remove the car"


def test_write_errors_are_clear(seeing, tmp_path):
    _, server = seeing({"write": lambda r, d: "nope"})
    result = runner.invoke(app, ["rubric", "write", "--task", "t2i", "--out", str(tmp_path / "x.json"),
                                 *_backend(server, tmp_path)])
    assert result.exit_code == 1 and "could not write the rubric" in result.output
    missing = runner.invoke(app, ["rubric", "write", "--task", "edit", "--prompt", "x", "--out", "y.json"])
    assert missing.exit_code == 2 and "--source" in missing.output
    bad = runner.invoke(app, ["rubric", "show", str(tmp_path / "nothing.json")])
    assert bad.exit_code == 2 and "cannot read rubric" in bad.output


def test_learn_prints_summary_and_writes_rubric(seed_dir, seeing, tmp_path):
    _, server = seeing()
    seeds = seed_dir(["first", "refine", "drop", "first"])
    out = tmp_path / "learned.json"
    guide = tmp_path / "guide.jsonl"
    write_png(tmp_path / "g1.png", (255, 255, 255))
    write_png(tmp_path / "g2.png", (0, 0, 0))
    guide.write_text(json.dumps({"caption": "a lamp", "preferred": "g1.png", "dispreferred": "g2.png",
                                 "rationale": "It is lit."}) + "\n")
    args = ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "3", "--t-max", "2",
            "--guide", str(guide), "--out", str(out), *_backend(server, tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("first-pass rate", "refined rate", "dropped rate", "50.0%", "25.0%", "wrote"):
        assert text in result.output, text
    rubric = Rubric.load(out)
    assert rubric.provenance.guide_sha256 and rubric.provenance.passed_first == 2
    assert (tmp_path / "learned.json.state.jsonl").exists()
    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 0 and "resuming: 4 of 4" in again.output
    changed = runner.invoke(app, [*args, "--k", "4"], env={"COLUMNS": "200"})  # another K: the state is set aside
    assert changed.exit_code == 0, changed.output
    message = " ".join(changed.output.split())
    assert "the learning settings changed since the last run (k: 3 -> 4)" in message and "set aside" in message
    assert "resuming" not in message and len(list(tmp_path.glob("learned.json.state.stale-*.jsonl"))) == 1
    restarted = runner.invoke(app, [*args, "--k", "4", "--restart"], env={"COLUMNS": "200"})
    assert restarted.exit_code == 0, restarted.output


def test_learn_input_errors(tmp_path, seeing):
    _, server = seeing()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"foo": 1}]))
    result = runner.invoke(app, ["rubric", "learn", "--pairs", str(bad), "--out", str(tmp_path / "o.json"),
                                 *_backend(server, tmp_path)])
    assert result.exit_code == 2 and "cannot tell the seed format" in result.output
    no_endpoint = runner.invoke(app, ["rubric", "learn", "--pairs", str(bad), "--format", "jsonl",
                                      "--out", str(tmp_path / "o.json")], env={"ARRPO_ENDPOINT": ""})
    assert no_endpoint.exit_code == 2


def test_model_and_server_text_is_printed_as_text_not_markup(seed_dir, scripted_server, tmp_path):
    """A ``[/bold]`` or an ANSI escape in what a server or model says is shown as it is, never read as
    rich markup (which raised MarkupError) nor sent raw to the terminal."""
    from arrpo.testing.scripted_server import Reply

    hostile = "closing [/bold] tag and [red]markup[/red] \u001b[2J"
    server = scripted_server(lambda request: Reply(status=400, body={"error": {"message": hostile}}))
    seeds = seed_dir(["first", "first"])
    args = ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--out", str(tmp_path / "r.json"),
            "--max-retries", "0", *_backend(server, tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert "closing [/bold] tag and [red]markup[/red] \\x1b[2J" in result.output
    assert "\u001b[2J" not in result.output

    rubric = Rubric.model_validate({"themes": [{"theme": "Light [/bold] \u001b]0;x\u0007", "tips": ["[red]t"]}],
                                    "provenance": {"model": "m [/i]"}})
    rubric.save(tmp_path / "odd.json")
    shown = runner.invoke(app, ["rubric", "show", str(tmp_path / "odd.json")], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, repr(shown.exception)
    assert "Light [/bold] \\x1b]0;x\\x07" in shown.output and "[red]t" in shown.output
    assert "m [/i]" in shown.output and "\u001b" not in shown.output
