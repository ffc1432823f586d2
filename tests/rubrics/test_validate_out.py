"""``arrpo rubric validate --out`` never writes into a file or into a folder that holds something
else; a rerun into its own validation folder still resumes."""

from __future__ import annotations

from typer.testing import CliRunner

from arrpo.cli import app
from arrpo.rubric import Rubric

runner = CliRunner()


def _args(server, tmp_path):
    return ["--endpoint", server.base_url, "--model", "seeing", "--cache-path", str(tmp_path / "c.sqlite"),
            "--bootstrap", "50"]


def test_validate_out_must_be_a_new_empty_or_validation_folder(seed_dir, seeing, tmp_path):
    _, server = seeing()
    seeds = seed_dir(["first", "refine", "first", "drop"])
    rubric = tmp_path / "rubric.json"
    Rubric.from_criteria(["The image is bright and evenly lit."], task="t2i").save(rubric)
    base = ["rubric", "validate", str(rubric), "--pairs", str(seeds), "--against", "direct"]

    taken = tmp_path / "notes.txt"
    taken.write_text("keep")
    result = runner.invoke(app, [*base, "--out", str(taken), *_args(server, tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "is a file" in result.output and taken.read_text() == "keep"

    busy = tmp_path / "home"
    busy.mkdir()
    (busy / "thesis.tex").write_text("keep")
    result = runner.invoke(app, [*base, "--out", str(busy), *_args(server, tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "other content" in result.output and sorted(p.name for p in busy.iterdir()) == ["thesis.tex"]

    fresh = tmp_path / "v"
    first = runner.invoke(app, [*base, "--out", str(fresh), *_args(server, tmp_path)], env={"COLUMNS": "300"})
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, [*base, "--out", str(fresh), *_args(server, tmp_path)], env={"COLUMNS": "300"})
    assert again.exit_code == 0, again.output  # its own folder: resumed, not refused
