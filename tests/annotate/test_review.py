"""``arrpo review`` over a real ``arrpo eval`` run: filters, answers side by side, exemplars marked in
the browser and then used by ``arrpo rubric learn --guide`` with a scripted VLM; HTTP and CLI
refusals; the run directory is never written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from arrpo.annotate.review import ExemplarBook, ReviewInputError, RunView
from arrpo.annotate.review_app import create_review_app
from arrpo.cli import app as cli
from arrpo.images import load_image
from arrpo.rubric import Rubric
from arrpo.rubrics.guide import read_guide
from arrpo.testing.scripted_server import Reply
from tests.eval.browser import Browser, require_browser
from tests.rubrics.seeing_vlm import SeeingVLM

from .conftest import write_png

runner = CliRunner()
#: pair id → what the scripted judge does with it
BEHAVIOUR = {"good": "right", "wrong": "wrong", "biased": "first", "broken": "garbage"}


def make_run(root: Path, scripted_server) -> tuple[Path, dict[str, dict]]:
    """An ``arrpo eval`` run over four labelled pairs whose judge is right, wrong, position-biased, invalid."""
    data = root / "data"
    lines, identity = [], {}
    for i, (pair_id, behaviour) in enumerate(BEHAVIOUR.items()):
        good = write_png(data / f"{pair_id}_good.png", (200 + i, 40, 40))
        bad = write_png(data / f"{pair_id}_bad.png", (40, 40, 200 + i))
        a_good = i % 2 == 0
        a, b = (good, bad) if a_good else (bad, good)
        lines.append({"id": pair_id, "prompt": f"a red square ({pair_id})", "image_a": a.name, "image_b": b.name,
                      "label": "A" if a_good else "B"})
        identity[load_image(good).sha256] = (behaviour, True)
        identity[load_image(bad).sha256] = (behaviour, False)
    dataset = data / "pairs.jsonl"
    dataset.write_text("".join(json.dumps(x) + "\n" for x in lines))

    def judge(request):
        behaviour, first_good = identity[hashlib.sha256(request.image_bytes[0]).hexdigest()]
        if behaviour == "garbage":
            return Reply(text="I would rather not say.")
        first_wins = {"right": first_good, "wrong": not first_good, "first": True}[behaviour]
        rank = [1, 2] if first_wins else [2, 1]
        return Reply(text=json.dumps({"rank": rank, "reason": f"Image {rank.index(1) + 1} is redder ({behaviour})."}))

    server = scripted_server(judge)
    config = root / "judges.yaml"
    config.write_text(f"backend: {{endpoint: '{server.base_url}', model: scripted, cache: false}}\n"
                      "judges:\n  - {name: direct, kind: direct, parse_retries: 0}\n")
    out = root / "run"
    result = runner.invoke(cli, ["eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out),
                                 "--bootstrap", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out, {x["id"]: x for x in lines}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def eval_run(tmp_path, scripted_server):
    return make_run(tmp_path, scripted_server)


def test_flags_follow_the_answers(eval_run):
    run, _ = eval_run
    rows = {row["id"]: row for row in RunView.load(run).rows()}
    flags = {pid: row["judges"]["direct"]["flags"] for pid, row in rows.items()}
    assert flags["good"] == {"invalid": False, "orders_disagree": False, "disagrees": False}
    assert flags["wrong"] == {"invalid": False, "orders_disagree": False, "disagrees": True}
    assert flags["biased"] == {"invalid": False, "orders_disagree": True, "disagrees": False}
    assert flags["broken"]["invalid"] and not flags["broken"]["disagrees"]
    reverse = rows["biased"]["judges"]["direct"]["reverse"]
    assert reverse["correct"] is False and "first" in reverse["reason"]


def test_review_in_the_browser_marks_exemplars_that_guide_rubric_learning(eval_run, tmp_path, page_server,
                                                                          scripted_server):
    binary = require_browser()
    run, pairs = eval_run
    before = snapshot(run)
    exemplars = tmp_path / "guide" / "exemplars.jsonl"
    args = ["review", str(run), "--out", str(exemplars)]
    server = page_server(args)
    rationales = {"wrong": "The red square fills the frame; the blue one ignores the prompt.",
                  "biased": "Only the first image is red, as the caption asks."}
    with Browser(binary) as browser:
        page = browser.page
        browser.open(server.url + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert page.inner_text("#shown") == "4 of 4 pairs shown"
        counts = {}
        for show in ("disagrees", "orders_disagree", "invalid"):
            page.check(f"input[name=show][value={show}]")
            counts[show] = [li.get_attribute("data-n") for li in page.query_selector_all("#list li")]
        order = list(pairs)
        assert {k: [order[int(n)] for n in v] for k, v in counts.items()} == {
            "disagrees": ["wrong"], "orders_disagree": ["biased"], "invalid": ["broken"]}
        page.select_option("#f-judge", "direct")
        for show, pair_id in (("disagrees", "wrong"), ("orders_disagree", "biased")):
            page.check(f"input[name=show][value={show}]")
            page.click("#list li")
            assert page.inner_text("#d-meta").startswith(f"{pair_id} ·")
            answers = page.inner_text("#d-answers")
            assert "forward" in answers and "reverse" in answers and "redder" in answers
            assert page.is_checked(f"input[name=preferred][value={pairs[pair_id]['label']}]")
            page.fill("#rationale", rationales[pair_id])
            page.click("#mark-button")
            page.wait_for_function("() => document.getElementById('mark-status').textContent.startsWith('marked')")
        page.check("input[name=show][value=marked]")
        assert len(page.query_selector_all("#list li")) == 2
        page.screenshot(path=str(tmp_path / "review.png"))
        assert browser.errors() == []

        server.kill()                         # resumable: a restart shows the marked pairs
        server = page_server(args, port=server.port)
        browser.open(server.url + "/")
        page.wait_for_selector("body[data-ready='1']")
        page.check("input[name=show][value=marked]")
        assert len(page.query_selector_all("#list li")) == 2
        page.click("#list li")
        assert page.is_disabled("#mark-button") and page.inner_text("#mark-status") == "already an exemplar"
    server.stop()
    assert snapshot(run) == before            # the run directory was only read

    guide = read_guide(exemplars, "t2i")
    assert [e.rationale for e in guide.exemplars] == [rationales["wrong"], rationales["biased"]]
    data = run.parent / "data"
    for exemplar, pair_id in zip(guide.exemplars, ("wrong", "biased"), strict=True):
        assert exemplar.preferred.sha256 == load_image(data / f"{pair_id}_good.png").sha256
        assert exemplar.dispreferred.sha256 == load_image(data / f"{pair_id}_bad.png").sha256

    # learn a guided rubric from the exemplars with a scripted VLM that sees the images
    seen: list[str] = []
    vlm = SeeingVLM()

    def handler(request):
        seen.append(request.text)
        return vlm(request)

    vlm_server = scripted_server(handler)
    seeds = tmp_path / "seeds" / "seeds.jsonl"
    lines = []
    for i in range(2):
        a = write_png(seeds.parent / f"{i}_a.png", (230, 230, 230)).name
        b = write_png(seeds.parent / f"{i}_b.png", (30, 30, 30)).name
        lines.append(json.dumps({"id": f"s{i}", "prompt": f"a lamp {i}", "image_a": a, "image_b": b, "label": "A"}))
    seeds.write_text("\n".join(lines) + "\n")
    rubric_path = tmp_path / "guided.json"
    result = runner.invoke(cli, ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "3",
                                 "--guide", str(exemplars), "--out", str(rubric_path),
                                 "--endpoint", vlm_server.base_url, "--model", "seeing", "--no-cache"])
    assert result.exit_code == 0, result.output
    rubric = Rubric.load(rubric_path)
    assert rubric.provenance.guide_sha256 == hashlib.sha256(exemplars.read_bytes()).hexdigest()
    generator_prompts = [text for text in seen if rationales["wrong"] in text]
    assert generator_prompts and all(rationales["biased"] in text for text in generator_prompts)


def test_http_refusals_and_no_paths(eval_run, tmp_path):
    run, pairs = eval_run
    view = RunView.load(run)
    book = ExemplarBook(tmp_path / "ex.jsonl", view)
    http = TestClient(create_review_app(view, book), base_url="http://127.0.0.1:8766")
    data = http.get("/api/run").json()
    assert [row["id"] for row in data["pairs"]] == list(pairs) and data["judges"] == ["direct"]
    assert http.get("/api/image/0/a").status_code == 200
    for path in ("/api/image/0/../../run.json", "/api/image/0/%2e%2e%2frun.json", "/api/image/9/a",
                 "/api/image/0/left", "/api/image/0/source", "/thumbs/x.jpg", "/run.json"):
        response = http.get(path)
        assert response.status_code in (404, 422) and b"arrpo_version" not in response.content, path
    post = lambda body: http.post("/api/exemplars", json=body)  # noqa: E731
    assert post({"n": 0, "preferred": "A", "rationale": "ok"}).status_code == 409          # too short
    assert post({"n": 0, "preferred": "C", "rationale": "long enough"}).status_code == 409
    assert post({"n": "0", "preferred": "A", "rationale": "long enough"}).status_code == 422
    assert post({"n": 99, "preferred": "A", "rationale": "long enough"}).status_code == 409
    assert post({"n": 0, "preferred": "B", "rationale": "B is better here."}).status_code == 200
    again = post({"n": 0, "preferred": "A", "rationale": "changed my mind"})
    assert again.status_code == 409 and "already" in again.json()["error"]["message"]
    record = json.loads((tmp_path / "ex.jsonl").read_text())
    assert record["preferred"].endswith("good_bad.png") and record["human_label"] == "A"
    # the original images moved away: marking refuses, showing falls back to the run's thumbnails
    for image in (run.parent / "data").glob("biased_*.png"):
        image.rename(image.with_suffix(".moved"))
    moved = RunView.load(run)
    assert moved.image(2, "a") is not None and "thumbs" in str(moved.image(2, "a").path)
    refused = ExemplarBook(tmp_path / "ex2.jsonl", moved)
    with pytest.raises(ValueError, match="not available"):
        refused.mark(2, "A", "a good enough reason")


def test_cli_bad_inputs_exit_2(eval_run, tmp_path):
    run, _ = eval_run
    unknown = runner.invoke(cli, ["review", str(tmp_path / "no-run"), "--port", "0"])
    assert unknown.exit_code == 2 and "no such run directory" in unknown.output
    empty = tmp_path / "empty"
    empty.mkdir()
    not_run = runner.invoke(cli, ["review", str(empty), "--port", "0"])
    assert not_run.exit_code == 2 and "not an arrpo eval run directory" in not_run.output
    inside = runner.invoke(cli, ["review", str(run), "--out", str(run / "ex.jsonl"), "--port", "0"])
    assert inside.exit_code == 2 and "outside the run directory" in inside.output
    with pytest.raises(ReviewInputError):
        RunView.load(run / "pairs.jsonl")
