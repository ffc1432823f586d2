"""OCR evidence through ``arrpo eval`` end to end, with the real OCR model on generated signs:
three evidence judges (tiebreak, override, evidence-only) and one without evidence on a labelled
sign dataset with the issue's bad inputs; what the records keep, the evidence metrics, the summary,
the HTML report (in Chromium) and ``arrpo review`` (HTTP and the page in Chromium); an evidence-only
run with no endpoint at all; an OCR failure inside a run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import arrpo.evidence.ocr
from arrpo._sync import run_sync
from arrpo.datasets import load_dataset
from arrpo.eval.config import load_config
from arrpo.eval.rundir import RunDir
from arrpo.eval.runner import evaluate
from arrpo.evidence.decide import NO_TEXT_REASON
from arrpo.evidence.ocr import OcrReader
from arrpo.jsonl import iter_records
from arrpo.testing.scripted_server import Reply, ScriptedVLMServer
from tests.eval.browser import Browser, require_browser

from .conftest import needs_ocr
from .signs import write_sign_dataset

pytestmark = needs_ocr

SRC = str(Path(__file__).resolve().parents[2] / "src")
JUDGES = ("plain", "tiebreak", "override", "only")
JUDGES_YAML = """\
backend: {{endpoint: '{url}', model: m, cache: false, max_retries: 0}}
judges:
  - {{name: plain, kind: direct, allow_ties: true}}
  - {{name: tiebreak, kind: direct, evidence: [ocr], ocr_policy: tiebreak, allow_ties: true}}
  - {{name: override, kind: direct, evidence: [ocr], ocr_policy: override, allow_ties: true}}
  - {{name: only, kind: direct, evidence: [ocr], evidence_only: true}}
"""


def _biased_model(request) -> Reply:
    """Whatever is shown first wins, except the coffee sign, which the model calls a tie."""
    if "FRESH COFFEE" in request.texts[-1].split("OCR evidence (")[0]:
        return Reply(text='{"rank": [1, 1], "reason": "Both signs look equally good."}')
    return Reply(text='{"rank": [1, 2], "reason": "Image 1 looks better."}')


def _evaluate(config_path: Path, dataset: Path, out: Path):
    config = load_config(config_path)
    pairs = load_dataset(f"jsonl:{dataset}").pairs
    return run_sync(evaluate(config, pairs, out, resamples=0))


@pytest.fixture(scope="module")
def ocr_run(tmp_path_factory, reader):
    """One eval run of the four judges over the sign dataset (the session's reader: reads are shared)."""
    root = tmp_path_factory.mktemp("ocr-eval")
    server = ScriptedVLMServer(_biased_model).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(arrpo.evidence.ocr, "_shared", reader)
            config = root / "judges.yaml"
            config.write_text(JUDGES_YAML.format(url=server.base_url))
            result = _evaluate(config, write_sign_dataset(root / "data"), root / "run")
        yield root / "run", result, list(server.seen)
    finally:
        server.stop()


def _lines(run: Path, judge: str) -> dict[str, dict]:
    return {r["id"]: r for r in iter_records(run / "verdicts" / f"{judge}.jsonl")}


def test_records_keep_the_evidence_once_per_pair_and_each_orders_outcome(ocr_run):
    run, _, seen = ocr_run
    assert len(seen) == 3 * 7 * 2  # plain, tiebreak and override ask the model in both orders; only never
    plain, tiebreak, override, only = (_lines(run, j) for j in JUDGES)
    for record in plain.values():  # a judge without evidence writes the fields it always wrote
        assert "evidence" not in record
        assert not {"decided_by", "policy"} & (record["forward"].keys() | record["reverse"].keys())
    evidence = override["open"]["evidence"]
    assert evidence["ocr"]["requested"]["strings"] == ["OPEN LATE"]
    assert [line["text"] for line in evidence["ocr"]["a"]["read"]["lines"]] == ["OPEN LATE"]
    assert evidence["ocr"]["a"]["match"]["score"] == 1.0 and evidence["ocr"]["b"]["match"]["score"] < 1.0
    assert evidence["decision"]["winner"] == "A" and evidence["decision"]["decisive"] is True
    forward, reverse = override["open"]["forward"], override["open"]["reverse"]  # A shown first, then B
    assert forward["decided_by"] == "vlm" and forward["policy"]["note"] == "evidence agrees with the VLM"
    assert reverse["decided_by"] == "evidence" and reverse["policy"]["vlm_winner"] == "B"
    assert reverse["winner"] == "A" and reverse["correct"] is True
    coffee = tiebreak["coffee"]  # the model's tie, settled by decisive evidence in both orders
    assert [coffee[s]["policy"]["vlm_winner"] for s in ("forward", "reverse")] == ["tie", "tie"]
    assert [coffee[s]["winner"] for s in ("forward", "reverse")] == ["B", "B"]
    assert tiebreak["open"]["reverse"]["decided_by"] == "vlm"  # a VLM preference: tiebreak keeps it
    assert all(only[p][s]["decided_by"] == "evidence" and only[p][s]["calls"] == 0
               for p in only for s in ("forward", "reverse"))
    # the bad inputs, through eval
    assert [only[p]["forward"]["correct"] for p in ("rotated", "poster", "sizes")] == [True, True, True]
    assert only["poster"]["evidence"]["ocr"]["requested"]["strings"] == ["SUMMER FEST", "JULY 4"]
    blank = only["blank"]  # no text in either image: nothing read, equal matches, a tie
    assert blank["evidence"]["ocr"]["a"]["read"]["lines"] == [] and blank["forward"]["winner"] == "tie"
    notext = override["notext"]  # a prompt that asks for no text: no OCR, no block, the model decides
    assert notext["evidence"]["ocr"] is None and notext["evidence"]["decision"]["invalid_reason"] == NO_TEXT_REASON
    assert notext["forward"]["decided_by"] == "vlm" and "policy" not in notext["forward"]
    assert only["notext"]["forward"]["winner"] == "invalid" and only["notext"]["forward"]["invalid_reason"] == NO_TEXT_REASON
    blocks = [r for r in seen if "OCR evidence (" in r.texts[-1]]
    assert len(blocks) == 2 * 6 * 2  # two evidence judges that ask, six prompts that ask for text, two orders
    assert not any("quiet street" in r.texts[-1] for r in blocks)


def test_the_metrics_and_the_summary_say_what_the_evidence_did(ocr_run):
    run, result, _ = ocr_run
    metrics = json.loads((run / "metrics.json").read_text())["judges"]
    assert "evidence" not in metrics["plain"]
    common = {"pairs": 7, "asked_for_text": 6, "unavailable": 0, "decisive": 5, "evidence_correct": 5, "orders": 14}
    assert metrics["tiebreak"]["evidence"] == {**common, "policy": "tiebreak", "decided_by_evidence": 2,
                                               "overrode": 0, "broke_ties": 2, "fixed": 2, "broke": 0}
    assert metrics["override"]["evidence"] == {**common, "policy": "override", "decided_by_evidence": 6,
                                               "overrode": 4, "broke_ties": 2, "fixed": 6, "broke": 0}
    assert metrics["only"]["evidence"] == {**common, "policy": "evidence_only", "decided_by_evidence": 14,
                                           "overrode": 0, "broke_ties": 0, "fixed": 0, "broke": 0}
    assert metrics["only"]["overall"]["values"]["forward"] == pytest.approx(5 / 7)
    assert metrics["only"]["overall"]["calls_per_pair"] == 0
    summary = result.report.summary
    assert "| override | override | 7 | 6 | 0 | 5 | 5 | 6/14 (42.9%) | 4 | 2 | 6 | 0 |" in summary
    assert "| only | evidence_only | 7 | 6 | 0 | 5 | 5 | 14/14 (100.0%) |" in summary
    assert "| plain |" not in summary.split("OCR evidence:")[1]
    assert "OCR evidence:" in (run / "summary.md").read_text()


_REPORT_ROWS = """() => [...document.querySelectorAll("tr.pair-row")].map((row) => ({
  id: row.querySelector("code").textContent,
  requested: (row.querySelector(".ocr.requested") || {}).textContent || "",
  a: (row.querySelector(".ocr[data-slot=a]") || {}).textContent || "",
  b: (row.querySelector(".ocr[data-slot=b]") || {}).textContent || "",
  notes: [...row.querySelectorAll(".judge-2 [data-decided-by]")].map((n) => n.dataset.decidedBy + ": " + n.textContent),
}))"""


def test_the_report_shows_what_was_read_beside_each_image(ocr_run):
    binary = require_browser()
    run, _, _ = ocr_run
    with Browser(binary) as browser:
        browser.open(run / "report.html")
        rows = {row["id"]: row for row in browser.evaluate(_REPORT_ROWS)}
        page = browser.page
        evidence_table = page.inner_text("#evidence")
        page.select_option("#f-judge", "override")
        shown = page.inner_text("tr.pair-row:nth-child(1) .judge-2")
        assert browser.errors() == []
    assert rows["open"]["requested"] == 'Requested text: "OPEN LATE"'
    assert rows["open"]["a"] == 'OCR: "OPEN LATE" · match 1.00' and rows["open"]["b"].startswith('OCR: "')
    assert rows["poster"]["requested"] == 'Requested text: "SUMMER FEST", "JULY 4"'
    assert rows["blank"]["a"] == "OCR: no text read · match 0.00"
    assert rows["notext"]["requested"] == "" and rows["notext"]["a"] == ""  # no OCR ran
    assert rows["open"]["notes"][0].startswith("vlm: decided by the model (ocr_policy override: the model said A")
    assert rows["open"]["notes"][1].startswith("evidence: decided by the OCR evidence (ocr_policy override: "
                                               "the model said B")
    assert "OCR evidence alone: A (A matches the requested text decisively better" in shown
    assert "evidence_only" in evidence_table and "6/14" in evidence_table


def test_text_read_from_an_image_is_escaped_and_capped_in_the_report(ocr_run, tmp_path):
    from arrpo.eval.report import write_report

    run, _, _ = ocr_run
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    hostile = '<img src=x onerror="document.title=1">' + "W" * 5000 + "\u202e\x00"
    for judge in ("tiebreak", "only"):  # an edited or hostile file: the page still holds
        path = RunDir(copy).verdicts(judge)
        records = list(iter_records(path))
        edited = next(r for r in records if r["id"] == "open")
        edited["evidence"]["ocr"]["a"]["read"]["lines"][0]["text"] = hostile
        edited["evidence"]["unavailable"] = "<script>alert(1)</script>" * 200
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    html = write_report(copy, resamples=0)["report.html"].read_text()
    assert "<img src=x" not in html and "&lt;img src=x" in html and "<script>alert" not in html
    assert "W" * 61 not in html and "\u202e" not in html  # a read line is clipped to 60 characters
    assert "&lt;script&gt;alert(1)" in html and "alert(1)&lt;/script&gt;" * 30 not in html  # notes are capped


def test_arrpo_review_shows_the_reads_the_request_and_what_decided(ocr_run, tmp_path):
    from tests.annotate.conftest import PageServer, free_port

    run, _, _ = ocr_run
    server = PageServer(["review", str(run), "--out", str(tmp_path / "exemplars.jsonl")], free_port(),
                        tmp_path / "logs").start()
    try:
        rows = {row["id"]: row for row in httpx.get(server.url + "/api/run", timeout=30).json()["pairs"]}
        assert rows["open"]["evidence"]["reads"]["A"] == 'OCR: "OPEN LATE" · match 1.00'
        assert rows["notext"]["evidence"] is None and "evidence" not in rows["open"]["judges"]["plain"]
        reverse = rows["open"]["judges"]["override"]["reverse"]
        assert reverse["decided_by"] == "evidence" and reverse["decision"].startswith("decided by the OCR evidence")
        binary = require_browser()
        with Browser(binary) as browser:
            page = browser.page
            browser.open(server.url + "/")
            page.wait_for_selector("body[data-ready='1']")
            page.click("#list li")  # the first pair: open
            assert page.inner_text("#d-requested") == 'Requested text: "OPEN LATE"'
            assert page.inner_text("#d-a-ocr") == 'OCR: "OPEN LATE" · match 1.00'
            answers = page.inner_text("#d-answers")
            assert "decided by the OCR evidence (ocr_policy override" in answers
            assert "only: OCR evidence alone: A" in answers
            page.click("#list li:nth-child(7)")  # notext: nothing read, nothing shown
            assert page.is_hidden("#d-requested") and page.inner_text("#d-a-ocr") == ""
            assert browser.errors() == []
    finally:
        server.stop()


def test_an_evidence_only_eval_needs_no_endpoint(tmp_path):
    config = tmp_path / "judges.yaml"
    config.write_text("judges:\n  - {name: only, kind: direct, evidence: [ocr], evidence_only: true}\n")
    dataset = write_sign_dataset(tmp_path / "data", ids=("open", "notext"))
    env = {**os.environ, "PYTHONPATH": SRC, "ARRPO_ENDPOINT": "", "ARRPO_MODEL": ""}
    done = subprocess.run([sys.executable, "-m", "arrpo", "eval", "--dataset", f"jsonl:{dataset}", "--judge",
                           str(config), "--out", str(tmp_path / "run"), "--no-progress", "--bootstrap", "0",
                           "--max-invalid-share", "0.6"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    records = _lines(tmp_path / "run", "only")
    assert records["open"]["forward"]["winner"] == "A" and records["open"]["reverse"]["winner"] == "A"
    assert records["notext"]["forward"]["winner"] == "invalid"
    assert "| only | evidence_only | 2 | 1 |" in done.stderr  # the summary is printed on stderr


def test_an_ocr_failure_in_a_run_is_unavailable_evidence_not_a_crash(tmp_path, scripted_server, monkeypatch):
    def broken_engine():
        def engine(array):
            raise RuntimeError("the model file is damaged")

        return engine

    monkeypatch.setattr(arrpo.evidence.ocr, "_shared", OcrReader(engine_factory=broken_engine, cache_size=0))
    server = scripted_server(_biased_model)
    config = tmp_path / "judges.yaml"
    config.write_text(JUDGES_YAML.format(url=server.base_url))
    _evaluate(config, write_sign_dataset(tmp_path / "data", ids=("open",)), tmp_path / "run")
    override, only = _lines(tmp_path / "run", "override")["open"], _lines(tmp_path / "run", "only")["open"]
    assert override["evidence"]["unavailable"].startswith("OCR evidence unavailable: image A: the OCR engine failed")
    assert [override[s]["winner"] for s in ("forward", "reverse")] == ["A", "B"]  # the model's own answers
    assert override["forward"]["decided_by"] == "vlm"
    assert only["forward"]["winner"] == "invalid" and "OCR evidence unavailable" in only["forward"]["invalid_reason"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["judges"]
    assert metrics["override"]["evidence"]["unavailable"] == 1 and metrics["override"]["evidence"]["decisive"] == 0
    html = (tmp_path / "run" / "report.html").read_text()
    assert "OCR unavailable (the OCR engine failed: RuntimeError: the model file is damaged)" in html
