"""``arrpo eval`` dataset options through the real command: images checked before any model call,
``--skip-missing``, ``--forward``, split choice errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from arrpo.testing.scripted_server import Reply
from tests.eval.helpers import write_png

SRC = str(Path(__file__).resolve().parents[2] / "src")


def cli(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, text=True, env=env, timeout=timeout)


def first_wins(request) -> Reply:
    return Reply(text='{"rank": [1, 2], "reason": "first"}')


def setup_run(tmp_path, server, missing: int):
    write_png(tmp_path / "a.png", (200, 0, 0))
    write_png(tmp_path / "b.png", (0, 0, 200))
    rows = [{"id": f"p{i}", "prompt": "p", "image_a": "a.png", "image_b": "gone.png" if i < missing else "b.png",
             "label": "B"} for i in range(4)]
    dataset = tmp_path / "pairs.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "judges.yaml"
    config.write_text(f"backend: {{endpoint: '{server.base_url}', model: m, cache: false, max_retries: 0}}\n"
                      "judges:\n  - {name: d, kind: direct}\n")
    return dataset, config


def test_missing_images_stop_before_any_call_or_are_skipped(tmp_path, scripted_server):
    server = scripted_server(first_wins)
    dataset, config = setup_run(tmp_path, server, missing=1)
    args = ["eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--no-progress", "--bootstrap", "0"]
    stopped = cli(*args, "--out", str(tmp_path / "run1"))
    assert stopped.returncode == 2 and server.requests == 0
    text = " ".join((stopped.stdout + stopped.stderr).split())
    assert "1 of 4 pairs have missing" in text and "gone.png" in text and "--images" in text
    skipped = cli(*args, "--out", str(tmp_path / "run2"), "--skip-missing")
    assert skipped.returncode == 0, skipped.stderr
    assert "left out 1 pairs" in " ".join((skipped.stdout + skipped.stderr).split())
    assert server.requests == 6  # 3 pairs x 2 orders
    run = json.loads((tmp_path / "run2" / "run.json").read_text())
    assert run["pairs"] == 3 and run["forward"] == "preferred_first"


def test_forward_on_the_command_line_overrides_the_judge_file(tmp_path, scripted_server):
    server = scripted_server(first_wins)
    dataset, config = setup_run(tmp_path, server, missing=0)
    out = tmp_path / "run"
    result = cli("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out),
                 "--no-progress", "--bootstrap", "0", "--forward", "given")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "run.json").read_text())["forward"] == "given"
    records = [json.loads(line) for line in (out / "verdicts" / "d.jsonl").read_text().splitlines()]
    # given order: A first; the judge always picks Image 1, so forward says A (wrong: label B)
    assert all(r["forward"]["shown_first"] == "A" and not r["forward"]["correct"] for r in records)
    bad = cli("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out), "--forward", "x")
    assert bad.returncode == 2 and "Invalid value for '--forward'" in bad.stdout + bad.stderr


def test_a_folder_with_several_splits_is_a_clear_cli_error(tmp_path, scripted_server):
    server = scripted_server(first_wins)
    _, config = setup_run(tmp_path, server, missing=0)
    folder = tmp_path / "hub" / "data"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        (folder / f"{split}-00000-of-00001.parquet").write_bytes(b"PAR1")
    result = cli("eval", "--dataset", f"hf:{tmp_path / 'hub'}", "--judge", str(config), "--out", str(tmp_path / "r"))
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "2 splits (test, train)" in text and "split=NAME" in text
    assert "Traceback" not in text and server.requests == 0
