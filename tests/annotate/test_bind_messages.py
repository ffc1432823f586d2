"""Refusing to bind the label/review pages names the page's own token variable, not the reward
service's (ARRPO_SERVE_TOKEN would not unlock the page)."""

from __future__ import annotations

from typer.testing import CliRunner

from arrpo.cli import app as cli

from .conftest import make_pairs

runner = CliRunner()


def test_a_public_host_without_a_token_names_the_page_variable(tmp_path):
    pairs, _ = make_pairs(tmp_path / "data", n=2)
    out = str(tmp_path / "seeds.jsonl")
    result = runner.invoke(cli, ["label", str(pairs), "--out", out, "--host", "0.0.0.0"], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "ARRPO_ANNOTATE_TOKEN" in text and "ARRPO_SERVE_TOKEN" not in text and "VLM budget" not in text

    result = runner.invoke(cli, ["label", str(pairs), "--out", out, "--host", "0.0.0.0", "--token-env", "MY_PAGE_TOKEN"],
                           env={"COLUMNS": "300", "MY_PAGE_TOKEN": "short"})
    assert result.exit_code == 2
    assert "MY_PAGE_TOKEN" in " ".join(result.output.split()) and "16 characters" in result.output
