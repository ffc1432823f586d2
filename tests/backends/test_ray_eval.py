"""``arrpo eval --ray local``: the same records as the single-process run, on a Ray actor pool."""

from __future__ import annotations

import json

import pytest
from tests.eval.test_runner import cli, make_dataset, red_is_better, write_config

pytest.importorskip("ray")


def summary(out) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {name: {"n": m["overall"]["n"], **m["overall"]["values"], "calls": m["overall"]["calls_per_pair"]}
            for name, m in metrics["judges"].items()}


def test_eval_on_ray_matches_local_run(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    data = make_dataset(tmp_path, n=6, broken=True)
    config = write_config(tmp_path, server.base_url, "  - {name: direct, kind: direct}\n")
    local = cli("eval", "--dataset", f"jsonl:{data}", "--judge", str(config), "--out", str(tmp_path / "local"),
                "--no-progress", "--bootstrap", "0")
    assert local.returncode == 0, local.stderr
    asked = server.requests
    on_ray = cli("eval", "--dataset", f"jsonl:{data}", "--judge", str(config), "--out", str(tmp_path / "ray"),
                 "--no-progress", "--bootstrap", "0", "--ray", "local", timeout=240)
    assert on_ray.returncode == 0, on_ray.stderr
    assert server.requests - asked == asked  # every comparison was asked again, on the workers
    assert summary(tmp_path / "ray") == summary(tmp_path / "local")
    overall = summary(tmp_path / "ray")["direct"]
    assert overall["n"] == 6 and overall["invalid_rate"] == pytest.approx(1 / 6)
    assert overall["forward"] == pytest.approx(5 / 6) and overall["reverse"] == pytest.approx(5 / 6)


def test_eval_on_ray_counts_http_retries_in_calls(tmp_path, scripted_server):
    """`calls` per order is the model calls made, HTTP retries on the workers included (as locally)."""
    import threading

    from arrpo.jsonl import iter_records
    from arrpo.testing.scripted_server import Reply

    seen: set[str] = set()
    lock = threading.Lock()

    def first_attempt_busy(request) -> Reply:
        with lock:
            first = repr(request.body) not in seen
            seen.add(repr(request.body))
        return Reply(status=503, headers={"Retry-After": "0"}) if first else red_is_better(request)

    server = scripted_server(first_attempt_busy)
    data = make_dataset(tmp_path, n=3)
    config = write_config(tmp_path, server.base_url, "  - {name: direct, kind: direct}\n")
    config.write_text(config.read_text().replace("max_retries: 0", "max_retries: 2"))
    result = cli("eval", "--dataset", f"jsonl:{data}", "--judge", str(config), "--out", str(tmp_path / "ray"),
                 "--no-progress", "--bootstrap", "0", "--ray", "local", timeout=240)
    assert result.returncode == 0, result.stderr
    assert server.requests == 3 * 2 * 2  # 3 pairs, 2 orders, each answered on its second call
    for record in iter_records(tmp_path / "ray" / "verdicts" / "direct.jsonl"):
        for side in ("forward", "reverse"):
            assert record[side]["attempts"] == 1 and record[side]["calls"] == 2
    assert summary(tmp_path / "ray")["direct"]["calls"] == 4.0
