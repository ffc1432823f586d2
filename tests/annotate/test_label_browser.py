"""``arrpo label`` in headless Chromium: keyboard labelling with undo and skip, a killed server,
a restart that resumes, and saved labels that name the input's A/B whatever side was shown."""

from __future__ import annotations

import json
from pathlib import Path

from arrpo.annotate.labels import log_path_for
from arrpo.datasets.seeds import read_seeds
from arrpo.jsonl import iter_records
from tests.eval.browser import Browser, require_browser

from .conftest import make_pairs

LEFT_IS_RED = """() => {
  const img = document.getElementById('img-left');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
  const [r, g, b] = ctx.getImageData(2, 2, 1, 1).data;
  return r > b;
}"""


def wait_ready(page, pair_id: str | None = None) -> str:
    """Wait until a pair's images are loaded; returns its id."""
    if pair_id is None:
        page.wait_for_function("() => document.body.dataset.ready && document.body.dataset.ready === document.body.dataset.pair")
    else:
        page.wait_for_function("(id) => document.body.dataset.ready === id", arg=pair_id)
    return page.evaluate("() => document.body.dataset.pair")


def choose(page, *, correct: bool = True, arrows: bool = False) -> str:
    """Press the key for the red image (or the other one); returns the id answered."""
    pair_id = wait_ready(page)
    red_left = page.evaluate(LEFT_IS_RED)
    pick_left = red_left if correct else not red_left
    keys = ("ArrowLeft", "ArrowRight") if arrows else ("1", "2")
    page.keyboard.press(keys[0] if pick_left else keys[1])
    page.wait_for_function("(id) => document.body.dataset.pair !== id", arg=pair_id)
    return pair_id


def progress(page) -> str:
    return page.inner_text("#progress")


def wait_progress(page, start: str = "", end: str = "") -> str:
    """Wait until the progress line starts with ``start`` and ends with ``end`` (the page writes it
    when it has the run's state, which a loaded machine may deliver late); returns it."""
    page.wait_for_function(
        "([start, end]) => { const t = document.querySelector('#progress').innerText;"
        " return t.startsWith(start) && t.endsWith(end); }",
        arg=[start, end],
    )
    return progress(page)


def network_failure(message: str) -> bool:
    """A request the browser could not complete (``net::ERR_…``): what a killed server causes."""
    return message.startswith("console.error: Failed to load resource: net::ERR_")


def test_label_with_keyboard_kill_restart_and_finish(tmp_path, page_server):
    binary = require_browser()
    pairs, intended = make_pairs(tmp_path / "data", n=8)
    out = tmp_path / "labels" / "seeds.jsonl"
    args = ["label", str(pairs), "--out", str(out), "--seed", "3"]
    server = page_server(args)
    with Browser(binary) as browser:
        page = browser.page
        browser.open(server.url + "/")
        wait_ready(page)
        assert "1" in page.inner_text("#hints") and "undo" in page.inner_text("#hints")
        wait_progress(page, start="labelled 0 · skipped 0 · left 8 of 8")
        assert page.is_visible("#img-left") and page.is_visible("#img-right")
        assert not page.is_visible("#source-fig")      # a text-to-image pair has no source

        first = choose(page)                          # p0: right answer with 1/2
        wrong = choose(page, correct=False)           # p1: wrong on purpose ...
        page.keyboard.press("u")                      # ... undone: p1 comes back
        assert wait_ready(page, wrong) == wrong
        wait_progress(page, start="labelled 1 ·")
        assert choose(page, arrows=True) == wrong     # p1 again, with the arrow keys
        skipped = wait_ready(page)
        page.keyboard.press("s")                      # p2: skipped
        page.wait_for_function("(id) => document.body.dataset.pair !== id", arg=skipped)
        fourth = choose(page)                         # p3
        assert [first, wrong, skipped, fourth] == ["p0", "p1", "p2", "p3"]
        wait_progress(page, start="labelled 3 · skipped 1 · left 4 of 8")
        assert "per label" in page.inner_text("#timing")

        assert wait_ready(page) == "p4"               # p4's images loaded: nothing in flight
        assert browser.errors() == []
        server.kill()                                 # no shutdown handler runs
        saved = {p.id: p.preferred for p in read_seeds(out).pairs}
        assert saved == {k: intended[k] for k in ("p0", "p1", "p3")}

        server = page_server(args, port=server.port)  # restart: resumes at p4
        browser.open(server.url + "/")
        assert wait_ready(page) == "p4"
        wait_progress(page, start="labelled 3 · skipped 1 · left 4 of 8")
        for step in range(4):
            if step == 3:                              # p7 is an edit: its source is shown
                assert wait_ready(page) == "p7" and page.is_visible("#source-fig")
                assert "editing instruction" in page.inner_text("#kind").lower()
            choose(page, arrows=step % 2 == 1)
        page.wait_for_selector("body.finished")
        summary = page.inner_text("#summary")
        assert "chose the left image" in summary and "binomial p" in summary
        # a request that met the killed server fails, whenever the page happens to notice: expected
        assert [m for m in browser.errors() if not network_failure(m)] == []

    seeds = read_seeds(out)                           # what `arrpo rubric learn --pairs` reads
    assert {p.id: p.preferred for p in seeds.pairs} == {k: v for k, v in intended.items() if k != "p2"}
    edit = next(p for p in seeds.pairs if p.id == "p7")
    assert edit.task == "edit" and edit.source is not None and Path(edit.source.path).name == "src.png"

    log = list(iter_records(log_path_for(out)))
    assert [r["event"] for r in log].count("undo") == 1
    assert [r["id"] for r in log if r["event"] == "skip"] == ["p2"]
    labels = [r for r in log if r["event"] == "label"]
    assert {r["left"] for r in labels} == {"A", "B"}   # both sides occurred: the A/B mapping was exercised
    final = {r["id"]: r for r in labels}               # latest label per pair
    left_chosen = sum(1 for r in final.values() if r["chosen"] == "left")
    assert f"{left_chosen} of {len(final)}" in summary


def test_label_page_on_a_folder_with_ties(tmp_path, page_server):
    binary = require_browser()
    root = tmp_path / "folder"
    from .conftest import BLUE, RED, write_png

    for name in ("red-square", "blue-square"):
        (root / name).mkdir(parents=True)
        (root / name / "prompt.txt").write_text(f"a {name.split('-')[0]} square")
        for k, color in enumerate((RED, BLUE, (40, 200, 40))):
            write_png(root / name / f"model{k}.png", color)
    out = tmp_path / "seeds.jsonl"
    server = page_server(["label", str(root), "--out", str(out), "--allow-ties", "--annotator", "ann"])
    with Browser(binary) as browser:
        page = browser.page
        browser.open(server.url + "/")
        wait_ready(page)  # the first pair is shown (and the progress line written) before it is read
        wait_progress(page, end="of 6")
        for _ in range(6):
            pair_id = wait_ready(page)
            page.keyboard.press("t")
            page.wait_for_function("(id) => document.body.dataset.pair !== id", arg=pair_id)
        page.wait_for_selector("body.finished")
        assert "6 (6 ties)" in page.inner_text("#summary")
    annotated = tmp_path / "seeds.ann.jsonl"
    assert annotated.read_text() == ""   # ties stay in the log; the seed file holds A/B labels only
    log = [json.loads(line) for line in (tmp_path / "seeds.ann.log.jsonl").read_text().splitlines()]
    assert {r["label"] for r in log} == {"tie"} and {r["annotator"] for r in log} == {"ann"}


def test_token_page_and_zoom(tmp_path, page_server):
    binary = require_browser()
    pairs, _ = make_pairs(tmp_path / "data", n=2, edit_last=False)
    token = "k" * 32
    server = page_server(["label", str(pairs), "--out", str(tmp_path / "s.jsonl")],
                         env={"ARRPO_ANNOTATE_TOKEN": token})
    with Browser(binary) as browser:
        page = browser.page
        browser.open(server.url + "/")
        assert "token" in page.content()               # refused without the token
        browser.open(server.url + f"/?token={token}")  # the cookie is set, the token leaves the URL
        assert page.url == server.url + "/"
        wait_ready(page)                               # state and images load with the cookie
        assert page.evaluate("() => document.getElementById('img-left').naturalWidth") == 64
        page.click("#img-right")
        page.wait_for_selector("#zoom.open")
        assert page.evaluate("() => document.getElementById('zoom-img').src === document.getElementById('img-right').src")
        page.keyboard.press("1")                       # keys do not answer while zoomed
        wait_progress(page, start="labelled 0")
        page.keyboard.press("Escape")
        page.wait_for_selector("#zoom:not(.open)", state="hidden")
        page.keyboard.press("1")
        page.wait_for_function("() => document.getElementById('progress').textContent.startsWith('labelled 1')")
