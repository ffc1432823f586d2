"""Comparing both prompt layouts in one ``arrpo eval`` run: two judges differing only in
``prompt_layout``; run.json records each layout, and a judge whose layout changed is not resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from arrpo.jsonl import iter_records
from arrpo.testing.scripted_server import DEFAULT_ANSWER, Reply
from tests.eval.test_judge_settings_yaml import _dataset

SRC = str(Path(__file__).resolve().parents[2] / "src")
JUDGES = """\
backend: {{endpoint: '{url}', model: m, cache: false, max_retries: 0}}
judges:
  - {{name: arr-authors, kind: direct}}
  - {{name: arr-cached, kind: direct, prompt_layout: {layout}}}
"""


def _eval(config: Path, dataset: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arrpo", "eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config),
         "--out", str(out), "--no-progress", "--bootstrap", "0"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=180,
    )


def test_two_judges_differing_only_in_layout_in_one_run(tmp_path, scripted_server):
    server = scripted_server(lambda request: Reply(text=DEFAULT_ANSWER))
    dataset = _dataset(tmp_path, n=3)
    config = tmp_path / "judges.yaml"
    config.write_text(JUDGES.format(url=server.base_url, layout="cached"))
    out = tmp_path / "run"
    done = _eval(config, dataset, out)
    assert done.returncode == 0, done.stderr
    roles = sorted(tuple(m["role"] for m in r.body["messages"]) for r in server.seen)
    assert roles == [("system", "user")] * 6 + [("user",)] * 6  # 3 pairs x 2 orders per judge
    recorded = {j["name"]: j["prompt_layout"] for j in json.loads((out / "run.json").read_text())["judges"]}
    assert recorded == {"arr-authors": "authors", "arr-cached": "cached"}
    for name in recorded:
        assert len(list(iter_records(out / "verdicts" / f"{name}.jsonl"))) == 3

    # the layout is part of what a judge is: resuming under another layout sets the judge's old
    # verdicts aside (the one "settings changed" rule) and asks again; nothing is mixed
    config.write_text(JUDGES.format(url=server.base_url, layout="authors"))
    again = _eval(config, dataset, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "arr-cached" in again.stderr and "changed" in again.stderr and "prompt_layout" in again.stderr
    assert len(server.seen) == 12 + 6  # only the changed judge asked again, both orders
    assert len(list((out / "verdicts").glob("arr-cached.stale-*.jsonl"))) == 1
    assert len(list(iter_records(out / "verdicts" / "arr-cached.jsonl"))) == 3
