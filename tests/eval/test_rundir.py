"""The run directory and its typed record (round trip, hostile lines), and ``evaluate()`` called from
Python without the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from arrpo.datasets import load_pairs
from arrpo.eval.config import EvalConfig
from arrpo.eval.report import write_report
from arrpo.eval.rundir import REPORT_FILES, EvalRecord, OrderOutcome, RunDir
from arrpo.eval.runner import evaluate
from arrpo.jsonl import iter_records
from arrpo.rubric import Rubric, Theme
from tests.eval.test_runner import make_dataset, red_is_better


def _record(pair_id: str, judge: str = "d", error: str | None = None, winner: str = "A") -> EvalRecord:
    return EvalRecord(
        id=pair_id, judge=judge, subset="s", label="A", task="t2i", thumbs={"a": "ab12cd34ef.jpg"}, error=error,
        forward=OrderOutcome(shown_first="A", winner=winner, correct=winner == "A", reason="because", raw="{}",
                             attempts=1, calls=1, prompt_tokens=10, completion_tokens=2),
        reverse=OrderOutcome(shown_first="B", winner="B", correct=False, invalid_reason=None),
        wall_s=0.5,
    )


def test_a_record_reads_back_as_it_was_written(tmp_path):
    plain, failed = _record("p1"), _record("p2", error="image error: truncated", winner="invalid")
    assert "error" not in plain.to_json() and failed.to_json()["error"] == "image error: truncated"
    assert list(plain.to_json()) == ["id", "judge", "subset", "label", "task", "thumbs", "rubric_key", "forward",
                                     "reverse", "wall_s"]
    assert list(plain.to_json()["forward"]) == ["shown_first", "winner", "correct", "reason", "raw", "invalid_reason",
                                                "latency_s", "attempts", "cached", "calls", "prompt_tokens",
                                                "completion_tokens"]
    run = RunDir(tmp_path / "run")
    run.verdict_dir.mkdir(parents=True)
    lines = [json.dumps(r.to_json()) for r in (plain, failed, _record("p1", winner="B"))]
    lines += ['{"id": "p3", "judge": "d"}', '{"id": "p4", "forward": ' + "[" * 5000 + "]" * 5000 + "}", '{"id": "p5"']
    run.verdicts("d").write_text("\n".join(lines) + "\n")
    records = run.records("d")
    assert set(records) == {"p1", "p2"}  # p3 is no valid record, p4 is hostile, p5 is torn: not judged
    assert records["p1"].forward.winner == "B"  # the newest record of an id wins
    assert records["p2"] == failed and records["p2"].invalid and not records["p1"].invalid
    (run.verdict_dir / "d.stale-20250101-000000.jsonl").write_text(lines[0] + "\n")
    (run.verdict_dir / "other.jsonl").write_text("")
    assert run.judges_on_disk() == ["d", "other"]


def test_the_run_directory_names_every_file(tmp_path):
    run = RunDir(tmp_path)
    assert run.run_json == tmp_path / "run.json" and run.manifest == tmp_path / "pairs.jsonl"
    assert run.verdicts("arr") == tmp_path / "verdicts" / "arr.jsonl" and run.thumbs == tmp_path / "thumbs"
    assert run.rubrics("arr") == tmp_path / "rubrics" / "arr" and run.sessions == tmp_path / "sessions.jsonl"
    assert [run.report_file(n).name for n in REPORT_FILES] == list(REPORT_FILES)
    assert run.info() is None and run.pairs() == []


def test_evaluate_from_python_writes_the_run_and_returns_its_metrics(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    Rubric(themes=[Theme(theme="Redness wins")]).save(tmp_path / "t2i.json")
    config = EvalConfig.model_validate({
        "backend": {"endpoint": server.base_url, "model": "m", "cache": False, "max_retries": 0},
        "judges": [{"name": "direct", "kind": "direct"}, {"name": "arr", "kind": "task_rubric", "rubric": "t2i.json"}],
        "base_dir": str(tmp_path),
    })
    pairs = load_pairs(f"jsonl:{make_dataset(tmp_path, n=4, broken=True)}", check_images=False)
    started, records, notes = [], [], []
    result = asyncio.run(evaluate(config, pairs, tmp_path / "run", resamples=0, on_start=started.append,
                                  on_record=lambda judge, record: records.append((judge, record.id)),
                                  on_note=notes.append))
    assert started == [8] and sorted(records) == sorted((j, f"p{i}") for j in ("direct", "arr") for i in range(4))
    assert server.requests == 2 * 3 * 2  # two judges, three readable pairs, both orders
    assert result.written == 8 and result.answers == {"direct": 8, "arr": 8}
    assert [r.startswith("image error:") for r in result.invalid_reasons["direct"]] == [True, True]
    assert result.metrics["judges"]["direct"]["overall"]["values"]["invalid_rate"] == 0.25
    assert result.metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result.report.summary.startswith("# arrpo eval: 4 pairs") and "![" not in result.report.summary
    assert all(path.exists() for path in result.report.paths.values())
    assert set(result.report.paths) == set(REPORT_FILES)

    again = asyncio.run(evaluate(config, pairs, tmp_path / "run", resamples=0, on_start=started.append))
    assert started[-1] == 0 and again.written == 0 and server.requests == 12  # resumed: nothing asked
    assert again.metrics["judges"] == result.metrics["judges"]


def test_write_report_returns_the_metrics_it_writes(tmp_path):
    run = RunDir(tmp_path)
    run.run_json.write_text(json.dumps({"forward": "preferred_first", "judges": [{"name": "d"}]}))
    run.manifest.write_text("".join(json.dumps({"id": f"p{i}", "label": "A", "subset": "s", "prompt": "x",
                                                "task": "t2i"}) + "\n" for i in (1, 2)))
    run.verdict_dir.mkdir()
    run.verdicts("d").write_text("".join(json.dumps(_record(f"p{i}").to_json()) + "\n" for i in (1, 2)))
    report = write_report(run, resamples=0)
    assert report.metrics["judges"]["d"]["judged"] == 2
    assert report.metrics["judges"]["d"]["overall"]["values"]["forward"] == 1.0
    assert report["summary.md"].read_text().startswith(report.summary + "\n\n![")
    assert [r["id"] for r in iter_records(run.manifest)] == ["p1", "p2"]


def test_a_record_file_is_the_runs_own_path(tmp_path):
    assert Path(RunDir(tmp_path)) == tmp_path
