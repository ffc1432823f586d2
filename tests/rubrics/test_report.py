"""The learning report: content, size, and behaviour in a real (headless) browser."""

from __future__ import annotations

import base64
import io
import json
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from arrpo.cli import app
from arrpo.rubric import Rubric
from arrpo.rubrics.report import (
    THUMB_SIZE,
    build_context,
    criteria_diff,
    read_learn_state,
    thumbnail_url,
    word_diff,
)

runner = CliRunner()
KINDS = ["first", "refine", "drop", "first", "refine", "first", "drop", "first", "first", "refine"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def learned(seed_dir, seeing, tmp_path):
    """A learning run with a held-out comparison, through the CLI; returns (rubric path, state path)."""
    _, server = seeing()
    seeds = seed_dir(KINDS)
    out = tmp_path / "run" / "rubric.json"
    args = ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "2", "--t-max", "2",
            "--out", str(out), "--holdout", "2", "--bootstrap", "100",
            "--endpoint", server.base_url, "--model", "seeing", "--cache-path", str(tmp_path / "c.sqlite")]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"learning report: {out.parent / 'report.html'}" in result.output.replace("\n", "")
    return out, out.with_name("rubric.json.state.jsonl")


def test_word_and_criteria_diffs():
    assert word_diff("The sky is blue.", "The sky is deep blue.") == [("same", "The sky is "), ("ins", "deep "),
                                                                     ("same", "blue.")]
    rows = criteria_diff(["keep", "old one", "gone"], ["keep", "new one"])
    assert rows[0] == {"kind": "same", "text": "keep"}
    assert rows[1]["kind"] == "changed" and ("del", "old ") in rows[1]["pieces"] and ("ins", "new ") in rows[1]["pieces"]
    assert rows[2] == {"kind": "removed", "text": "gone"}
    assert criteria_diff([], ["a"]) == [{"kind": "added", "text": "a"}]


def test_thumbnails_are_bounded(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (1600, 900), (10, 200, 30)).save(big)
    url = thumbnail_url(big)
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert max(image.size) == THUMB_SIZE and image.format == "JPEG"
    assert thumbnail_url(tmp_path / "missing.png") is None


def test_report_content(learned):
    out, state_path = learned
    context = build_context(read_learn_state(state_path), Rubric.load(out))
    cards = context["cards"]
    assert len(cards) == 8  # the 10 seed pairs minus the 2 held out
    heldout = context["run"]["heldout_ids"]
    assert not {c["id"] for c in cards} & set(heldout)
    by_status = {s: sum(c["status"] == s for c in cards) for s in ("passed_first", "refined", "dropped")}
    assert by_status == {
        "passed_first": context["summary"].passed_first, "refined": context["summary"].refined,
        "dropped": context["summary"].dropped,
    }
    refined = next(c for c in cards if c["status"] == "refined")
    assert refined["thumb_a"].startswith("data:image/jpeg;base64,") and refined["preferred"] in ("A", "B")
    assert refined["attempts"][1]["diff"] and len(refined["attempts"][0]["answers"]) == 2  # both orders
    anchors = {c["anchor"] for c in cards}
    links = [link for t in context["themes"] for tip in t["tips"] for link in (tip["links"] or [])]
    assert links and all(link["anchor"] in anchors for link in links)
    assert any(tip["links"] is None for t in context["themes"] for tip in t["tips"])  # "General craft"
    assert context["holdout"]["pairs"] == 2 and "<svg" in context["holdout"]["chart"]
    html = (out.parent / "report.html").read_text()
    assert "source not given by the structuring model" in html and "Held-out comparison" in html
    offline = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in offline and "https://" not in offline  # nothing fetched
    assert len(html) < 60_000 + 8 * 15_000


def test_report_command_rewrites_it(learned, tmp_path):
    out, state_path = learned
    report = out.parent / "report.html"
    report.unlink()
    result = runner.invoke(app, ["rubric", "report", str(out.parent)])
    assert result.exit_code == 0, result.output
    assert report.exists() and str(report) in result.output
    assert runner.invoke(app, ["rubric", "report", str(state_path)]).exit_code == 0
    empty = runner.invoke(app, ["rubric", "report", str(tmp_path / "nothing")])
    assert empty.exit_code == 2 and "no such file" in empty.output


def test_report_in_headless_chromium(learned):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no system chromium on PATH (browsers are never downloaded)")
    out, _ = learned
    report = out.parent / "report.html"
    dropped = sum(json.loads(line).get("status") == "dropped" for line in out.with_name("rubric.json.state.jsonl")
                  .read_text().splitlines())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            problems: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            assert problems == []
            assert all(url.startswith(("file:", "data:")) for url in requests), requests

            cards = page.locator("article.card")
            assert cards.count() == 8
            hrefs = page.eval_on_selector_all("a.src", "links => links.map(a => a.getAttribute('href'))")
            assert hrefs
            for href in hrefs:
                assert page.locator(f"article.card{href}").count() == 1, href

            page.select_option("select[data-filter=status]", "dropped")
            assert page.locator("article.card:visible").count() == dropped
            assert page.inner_text("#shown") == str(dropped)
            page.select_option("select[data-filter=status]", "passed_first")
            visible = page.locator("article.card:visible")
            assert visible.count() >= 1
            assert all(visible.nth(i).get_attribute("data-status") == "passed_first" for i in range(visible.count()))

            # following a tip's link shows its card even when the filter hid it
            page.select_option("select[data-filter=status]", "dropped")
            link = page.locator("a.src").first
            target = link.get_attribute("href")
            link.click()
            assert page.locator(f"article.card{target}").is_visible()
            assert page.inner_text("#shown") == "8"
            widths = page.eval_on_selector_all("article.card img", "imgs => imgs.map(i => i.naturalWidth)")
            assert widths and max(widths) <= 160
        finally:
            browser.close()


async def test_report_from_the_python_api_for_edits(seed_dir, seeing, backend_for, tmp_path):
    from arrpo.rubrics import LearnConfig, RubricLearner, read_seeds
    from arrpo.rubrics.report import write_learn_report

    _, server = seeing()
    seeds = read_seeds(seed_dir(["first", "refine", "drop"], task="edit"), task="edit")
    state = tmp_path / "edit.state.jsonl"
    result = await RubricLearner(backend_for(server), LearnConfig(task="edit", k=2, t_max=1)).learn(seeds, state)
    report = write_learn_report(state, rubric=result.rubric, seeds=seeds, out=tmp_path / "edit-report.html")
    html = report.read_text()
    assert html.count('<article class="card"') == 3 and html.count('alt="source of ') == 3
    assert "Instruction:</b> caption number 1 (refine)" in html
    assert "could not read the seed file" not in html and "does not name its seed file" not in html
    bare = write_learn_report(state, out=tmp_path / "bare.html").read_text()  # no seeds: says so, still works
    assert bare.count('<article class="card"') == 3 and "does not name its seed file" in bare


def test_a_run_without_a_rubric_still_gets_a_report(seed_dir, seeing, tmp_path):
    _, server = seeing()
    seeds = seed_dir(["drop", "drop"])
    out = tmp_path / "none" / "rubric.json"
    result = runner.invoke(app, ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "2", "--t-max", "0",
                                 "--out", str(out), "--endpoint", server.base_url, "--model", "seeing",
                                 "--cache-path", str(tmp_path / "c.sqlite")], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "no pair was verified" in result.output
    html = (out.parent / "report.html").read_text()
    assert "No rubric was built yet" in html and html.count('<article class="card"') == 2
    assert html.count('data-status="dropped"') == 2
