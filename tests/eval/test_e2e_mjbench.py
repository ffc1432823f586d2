"""End to end: ``arrpo eval`` on the real MJ-Bench artifact pairs with a judge of known position bias.

The scripted VLM recognises each image by its content hash. It answers correctly, except on a
known set of "close calls" where it always prefers Image 1. With forward = preferred image first,
the forward answers are all correct and the reverse answers are wrong exactly on the close calls,
so forward = 100%, reverse = 1 − c/N, Δ = c/N and swap consistency = 1 − c/N, exactly.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from arrpo.datasets import load_pairs
from arrpo.images import load_image
from arrpo.testing.scripted_server import Reply
from tests.eval.browser import Browser, require_browser

N_PAIRS = 40
SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, text=True, env=env, timeout=timeout)


_RUN: dict = {}


@pytest.fixture
def mj_run(tmp_path_factory, shared_data):
    """One eval run shared by the tests of this module (made on first use)."""
    if not _RUN:
        _RUN.update(_make_run(tmp_path_factory, shared_data))
    return _RUN


def _make_run(tmp_path_factory, shared_data):
    from arrpo.testing.scripted_server import ScriptedVLMServer

    root = shared_data / "mjbench-artifacts"
    pairs = load_pairs(f"mjbench:{root}", sample=N_PAIRS)
    identity = {}
    for pair in pairs:
        good, bad = (pair.image_a, pair.image_b) if pair.label == "A" else (pair.image_b, pair.image_a)
        identity[load_image(good.path).sha256] = (pair.id, True)
        identity[load_image(bad.path).sha256] = (pair.id, False)
    close_calls = {p.id for i, p in enumerate(pairs) if i % 4 == 1}

    def handler(request):
        first = hashlib.sha256(request.image_bytes[0]).hexdigest()
        pair_id, first_is_preferred = identity[first]
        if pair_id in close_calls or first_is_preferred:
            return Reply(text='{"rank": [1, 2], "reason": "Image 1 looks more natural."}')
        return Reply(text='{"rank": [2, 1], "reason": "Image 2 looks more natural."}')

    work = tmp_path_factory.mktemp("mj")
    with ScriptedVLMServer(handler) as server:
        config = work / "judges.yaml"
        config.write_text(
            f"backend: {{endpoint: '{server.base_url}', model: scripted, cache: false}}\n"
            "judges:\n  - {name: direct, kind: direct}\n", encoding="utf-8")
        out = work / "run"
        result = run_cli("eval", "--dataset", f"mjbench:{root}", "--sample", str(N_PAIRS), "--judge", str(config),
                         "--out", str(out), "--bootstrap", "300", "--no-progress")
        requests = server.requests
    assert result.returncode == 0, result.stderr
    return {"out": out, "pairs": pairs, "close": close_calls, "requests": requests, "stderr": result.stderr}


def test_reported_accuracy_matches_the_scripted_bias(mj_run):
    n, c = len(mj_run["pairs"]), len(mj_run["close"])
    assert n == N_PAIRS and c == 10
    assert {p.subset for p in mj_run["pairs"]} == {"human", "objects_indoor"}
    assert mj_run["requests"] == 2 * n
    metrics = json.loads((mj_run["out"] / "metrics.json").read_text())
    values = metrics["judges"]["direct"]["overall"]["values"]
    assert values["forward"] == 1.0
    assert values["reverse"] == pytest.approx(1 - c / n)
    assert values["mean"] == pytest.approx(1 - c / (2 * n))
    assert values["delta"] == pytest.approx(c / n)
    assert values["consistency"] == pytest.approx(1 - c / n)
    assert values["invalid_rate"] == 0 and values["tie_rate"] == 0
    for subset, data in metrics["judges"]["direct"]["subsets"].items():
        members = [p for p in mj_run["pairs"] if p.subset == subset]
        closes = sum(p.id in mj_run["close"] for p in members)
        assert data["n"] == len(members)
        assert data["values"]["delta"] == pytest.approx(closes / len(members))
    overall = metrics["judges"]["direct"]["overall"]
    assert overall["calls_per_pair"] == 2.0 and overall["tokens_per_pair"] == 240
    low, high = overall["intervals"]["delta"]
    assert low <= c / n <= high
    summary = (mj_run["out"] / "summary.md").read_text()
    assert "| direct | all | 40 | 100.0" in summary and "| 25.0 [" in summary
    assert "Δ (fwd−rev)" in mj_run["stderr"]


def test_report_command_rewrites_the_report(mj_run):
    (mj_run["out"] / "report.html").unlink()
    result = run_cli("report", str(mj_run["out"]), "--bootstrap", "100")
    assert result.returncode == 0, result.stderr
    assert (mj_run["out"] / "report.html").stat().st_size > 10_000
    assert "report.html" in result.stdout


def test_report_renders_in_headless_chromium(mj_run, tmp_path):
    binary = require_browser()
    report = mj_run["out"] / "report.html"
    html = report.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    with Browser(binary) as browser:
        browser.open(report)
        assert browser.errors() == []
        assert browser.evaluate("document.querySelectorAll('tr.pair-row').length") == N_PAIRS
        images = browser.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        assert images == 2 * N_PAIRS
        summary = browser.evaluate("document.getElementById('summary').innerText")
        assert "100.0" in summary and "75.0" in summary and "25.0" in summary
        assert browser.evaluate("document.getElementById('shown').textContent") == f"{N_PAIRS} of {N_PAIRS} pairs shown"
        shown = browser.evaluate(
            "(() => { const s = document.getElementById('f-outcome'); s.value = 'order-dependent';"
            " s.dispatchEvent(new Event('change'));"
            " return document.querySelectorAll('tr.pair-row:not([hidden])').length; })()")
        assert shown == len(mj_run["close"])
        shown = browser.evaluate(
            "(() => { const o = document.getElementById('f-outcome'); o.value = '';"
            " o.dispatchEvent(new Event('change')); const s = document.getElementById('f-subset');"
            " s.value = 'human'; s.dispatchEvent(new Event('change'));"
            " return document.querySelectorAll('tr.pair-row:not([hidden])').length; })()")
        assert shown == sum(p.subset == "human" for p in mj_run["pairs"])
        browser.evaluate("(() => { const s = document.getElementById('f-subset'); s.value = '';"
                         " s.dispatchEvent(new Event('change')); })()")
        shot = browser.screenshot(tmp_path / "report.png")
        assert browser.errors() == []
    assert shot.stat().st_size > 20_000
