"""Issue 10: ``arrpo eval`` against a VLM that sends every kind of hostile answer.

Every pair ends with one record, the report is written, nothing prints a traceback, and a
rerun finds nothing left to judge.
"""

from __future__ import annotations

import json
from pathlib import Path

from arrpo.jsonl import iter_records
from arrpo.testing.hostile import CASES, hostile_handler
from tests.eval.helpers import write_png
from tests.eval.test_runner import cli, write_config


def write_dataset(root: Path, good: int) -> Path:
    write_png(root / "dark.png", (30, 30, 30))
    write_png(root / "bright.png", (220, 220, 220))
    rows = [{"id": name, "prompt": f"case-{name}", "image_a": "dark.png", "image_b": "bright.png", "label": "B"}
            for name in CASES]
    rows += [{"id": f"good{i}", "prompt": f"plain {i}", "image_a": "dark.png", "image_b": "bright.png",
              "label": "B"} for i in range(good)]
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_eval_survives_every_hostile_answer_and_a_rerun_finds_nothing_left(tmp_path, scripted_server):
    server = scripted_server(hostile_handler)
    config = write_config(tmp_path, server.base_url, "  - {name: direct, kind: direct}\n")
    config.write_text(config.read_text().replace("max_retries: 0", "max_retries: 1"))
    dataset = write_dataset(tmp_path, good=len(CASES))
    out = tmp_path / "run"
    args = ["eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out),
            "--bootstrap", "0", "--no-progress", "--max-concurrency", "8"]
    result = cli(*args, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    verdicts = out / "verdicts" / "direct.jsonl"
    raw = verdicts.read_bytes()
    raw.decode("utf-8")  # valid UTF-8 throughout
    records = list(iter_records(verdicts))
    ids = [r["id"] for r in records]
    assert len(ids) == 2 * len(CASES) and len(set(ids)) == len(ids)  # none lost, none twice
    assert len(raw) < 2 * len(CASES) * 400_000  # megabyte answers are kept as bounded excerpts
    by_id = {r["id"]: r for r in records}
    for name, (_, can_be_valid) in CASES.items():
        for order in ("forward", "reverse"):
            side = by_id[name].get(order)
            assert side is not None, (name, by_id[name])
            assert can_be_valid or side["winner"] == "invalid", (name, order, side)
    assert (out / "metrics.json").exists() and (out / "report.html").exists()

    asked = server.requests
    again = cli(*args, timeout=600)
    assert again.returncode == 0 and "0 to judge" in again.stderr, again.stderr[-2000:]
    assert server.requests == asked
