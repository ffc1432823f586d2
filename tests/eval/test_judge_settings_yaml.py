"""Judge settings in an ``arrpo eval`` judges YAML: spelled at the judge's level, sent with every
request, refused in one line when unknown or out of range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arrpo.eval.config import ConfigError, load_config
from arrpo.jsonl import iter_records
from arrpo.testing.scripted_server import Reply
from tests.eval.helpers import write_png

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _dataset(tmp_path: Path, n: int = 2) -> Path:
    write_png(tmp_path / "red.png", (220, 20, 20))
    write_png(tmp_path / "blue.png", (20, 20, 220))
    rows = [{"id": f"p{i}", "prompt": f"prompt {i}", "image_a": "red.png", "image_b": "blue.png", "label": "A"}
            for i in range(n)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _answers_on_the_third_ask(request) -> Reply:
    """Unusable answers until the judge has re-asked twice (two of its answers are quoted back)."""
    asked_again = sum(1 for m in request.messages if m.get("role") == "assistant")
    if asked_again < 2:
        return Reply(text="I like both of them " * 5)
    return Reply(text='{"rank": [1, 2], "reason": "' + "the first is redder " * 10 + '"}')


def test_settings_of_a_judge_reach_its_requests_and_records(tmp_path, scripted_server):
    server = scripted_server(_answers_on_the_third_ask)
    config = tmp_path / "judges.yaml"
    config.write_text(
        f"backend: {{endpoint: '{server.base_url}', model: m, cache: false, max_retries: 0}}\n"
        "judges:\n"
        "  - {name: tuned, kind: direct, temperature: 0.4, max_tokens: 99, parse_retries: 2, max_answer_chars: 30}\n"
    )
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "arrpo", "eval", "--dataset", f"jsonl:{_dataset(tmp_path)}", "--judge", str(config),
         "--out", str(out), "--no-progress", "--bootstrap", "0"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(server.seen) == 2 * 2 * 3  # 2 pairs, 2 orders, 1 + parse_retries answers each
    assert {(r.body["temperature"], r.body["max_tokens"]) for r in server.seen} == {(0.4, 99)}
    for record in iter_records(out / "verdicts" / "tuned.jsonl"):
        for side in ("forward", "reverse"):
            assert record[side]["attempts"] == 3
            assert len(record[side]["raw"]) < 30 + 60  # max_answer_chars, plus the cut marker
    recorded = json.loads((out / "run.json").read_text())["judges"][0]
    assert (recorded["temperature"], recorded["parse_retries"]) == (0.4, 2)  # run.json names the settings


def test_a_judge_spec_builds_its_judge_from_the_same_settings(tmp_path):
    from arrpo.eval.runner import build_setups

    config = tmp_path / "judges.yaml"
    config.write_text("judges:\n  - {name: a, kind: direct, allow_ties: true, temperature: 0.3}\n")
    (setup,) = build_setups(load_config(config), tmp_path, {"a": None})
    settings = setup.judge.settings
    assert (settings.allow_ties, settings.temperature, settings.order) == (True, 0.3, "given")


@pytest.mark.parametrize(("judge", "message"), [
    ("{name: a, kind: direct, temprature: 0.3}", "judges.0.temprature: unknown key"),
    ("{name: a, kind: direct, order: both}", "judges.0.order: unknown key"),  # eval asks both orders itself
    ("{name: a, kind: direct, parse_retries: -1}", "judges.0.parse_retries: Input should be greater than or equal to 0"),
    ("{name: a, kind: direct, max_answer_chars: '100'}", "judges.0.max_answer_chars: Input should be a valid integer"),
    ("{name: a, kind: direct, backend: {timeout: -1}}", "judges.0.backend.timeout: Input should be greater than 0"),
])
def test_unknown_or_bad_settings_are_one_line_errors(tmp_path, judge, message):
    path = tmp_path / "judges.yaml"
    path.write_text(f"judges:\n  - {judge}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {message}"


def test_backend_overrides_apply_only_the_keys_given(tmp_path):
    path = tmp_path / "judges.yaml"
    path.write_text("backend: {endpoint: 'http://h/v1', model: shared, timeout: 30}\n"
                    "judges:\n  - {name: a, kind: direct, backend: {model: other}}\n  - {name: b, kind: direct}\n")
    config = load_config(path)
    first, second = (config.backend_for(spec) for spec in config.judges)
    assert (first.endpoint, first.model, first.timeout) == ("http://h/v1", "other", 30.0)
    assert second == config.backend
    assert config.judges[0].model_dump(mode="json")["backend"] == {"model": "other"}  # what run.json records
