"""The learning report stays readable when a tip is backed by many pairs or an id is very long,
and `arrpo rubric report` copes with a state file a kill left torn."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from arrpo.cli import app

runner = CliRunner()
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
LONG_ID = "pair-" + "x" * 400  # no space to break at


@pytest.fixture
def many_sources(seed_dir, seeing, tmp_path):
    """A learned rubric whose brightness tip is drawn from 30 pairs, one of them with a 405-character id."""
    _, server = seeing()
    seeds = seed_dir(["first"] * 30)
    records = [json.loads(line) for line in seeds.read_text().splitlines()]
    records[3]["id"] = LONG_ID
    seeds.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "run" / "rubric.json"
    args = ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "2", "--t-max", "1", "--out", str(out),
            "--endpoint", server.base_url, "--model", "seeing", "--cache-path", str(tmp_path / "c.sqlite")]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return out


def test_source_links_wrap_instead_of_widening_the_page(many_sources):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no system chromium on PATH (browsers are never downloaded)")
    report = many_sources.parent / "report.html"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            links = page.locator("a.src")
            assert links.count() >= 30  # the brightness tip names every pair
            assert page.locator(f"a.src[href='#{page.locator('article.card').nth(3).get_attribute('id')}']").count()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, f"the page is {width}px wide: source links or a long id do not wrap"
        finally:
            browser.close()


def test_report_from_a_state_with_a_torn_last_line(many_sources):
    state = many_sources.with_name("rubric.json.state.jsonl")
    lines = state.read_text().splitlines(keepends=True)
    pair_lines = [line for line in lines if json.loads(line).get("id")]
    torn = pair_lines[-1][: len(pair_lines[-1]) // 2]  # a kill in the middle of the last pair's line
    state.write_text("".join(lines[: lines.index(pair_lines[-1])]) + torn)
    report = many_sources.parent / "report.html"
    report.unlink()

    result = runner.invoke(app, ["rubric", "report", str(many_sources.parent)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert html.count('<article class="card') == 30
    assert html.count('data-status="not_run"') == 1  # the torn pair is shown as not finished, not lost
    assert LONG_ID in html


def test_report_of_a_copied_folder_is_written_into_that_folder(many_sources, tmp_path):
    original = many_sources.parent
    before = (original / "report.html").read_bytes()
    copy = tmp_path / "archive" / "run-copy"
    shutil.copytree(original, copy)
    (copy / "report.html").unlink()

    result = runner.invoke(app, ["rubric", "report", str(copy)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert (copy / "report.html").exists()  # not written back into the folder it was copied from
    assert (original / "report.html").read_bytes() == before
    assert "Bright quality" in (copy / "report.html").read_text()  # the copy's rubric was found

    shutil.rmtree(original)  # moved: the recorded folder is gone, nothing is created there
    result = runner.invoke(app, ["rubric", "report", str(copy / "rubric.json.state.jsonl")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert not original.exists()



def test_a_state_with_lone_surrogates_gives_a_valid_utf8_report(many_sources):
    """Strings a model wrote may hold lone surrogates (an escape cut at max_tokens); the report
    shows U+FFFD instead of failing to write."""
    state = many_sources.with_name("rubric.json.state.jsonl")
    lines = state.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if json.loads(line).get("kind") == "pair")
    lines[index] = lines[index].replace("bright", "bright \\ud800", 1)
    state.write_text("\n".join(lines) + "\n")

    result = runner.invoke(app, ["rubric", "report", str(many_sources.parent)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    html = (many_sources.parent / "report.html").read_bytes().decode("utf-8")
    assert "bright \ufffd" in html


def test_report_of_a_device_says_what_it_is():
    result = runner.invoke(app, ["rubric", "report", "/dev/null"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "not a learning state file" in result.output


def test_a_run_learned_from_a_dataset_names_it_in_the_header(seed_dir, seeing, tmp_path):
    _, server = seeing()
    seeds = seed_dir(["first", "first", "refine", "first"])
    out = tmp_path / "run" / "rubric.json"
    args = ["rubric", "learn", "--dataset", f"jsonl:{seeds}", "--task", "t2i", "--k", "2", "--t-max", "1",
            "--holdout", "1", "--bootstrap", "20", "--out", str(out), "--endpoint", server.base_url, "--model", "seeing",
            "--cache-path", str(tmp_path / "c.sqlite")]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    html = (out.parent / "report.html").read_text()
    assert f"seed pairs: jsonl:{seeds} (held out: 1 pairs, --holdout 1)" in html
