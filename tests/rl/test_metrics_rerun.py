"""A run killed between checkpoints is redone from its last checkpoint (or from the start): the
metrics it logged past that point must not stay beside the redone ones as duplicate iterations."""

from __future__ import annotations

import json

from arrpo.rl.metrics import MetricsSink


def iterations(path) -> list[int]:
    return [json.loads(line)["iteration"] for line in path.read_text().splitlines()]


def log_range(sink: MetricsSink, first: int, last: int) -> None:
    for step in range(first, last + 1):
        sink.log(step, {"loss": float(step)})


def test_rerun_from_scratch_replaces_the_killed_runs_metrics(tmp_path):
    killed = MetricsSink(tmp_path, tensorboard=False)
    log_range(killed, 1, 12)
    killed._jsonl.write('{"iteration": 13, "lo')  # SIGKILL in the middle of a line
    killed._jsonl.flush()
    rerun = MetricsSink(tmp_path, tensorboard=False, start_iteration=0)
    log_range(rerun, 1, 3)
    rerun.close()
    assert iterations(tmp_path / "metrics.jsonl") == [1, 2, 3]


def test_resume_keeps_metrics_up_to_the_checkpoint(tmp_path):
    first = MetricsSink(tmp_path, tensorboard=False)
    log_range(first, 1, 12)
    first.close()
    resumed = MetricsSink(tmp_path, tensorboard=False, start_iteration=10)
    log_range(resumed, 11, 14)
    resumed.close()
    lines = iterations(tmp_path / "metrics.jsonl")
    assert lines == list(range(1, 15))
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[10])["loss"] == 11.0


def test_tensorboard_drops_the_redone_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = MetricsSink(tmp_path, tensorboard=True)
    log_range(first, 1, 6)
    first.close()
    resumed = MetricsSink(tmp_path, tensorboard=True, start_iteration=3)
    for step in range(4, 7):
        resumed.log(step, {"loss": 100.0 + step})
    resumed.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    losses = [(e.step, e.value) for e in events.Scalars("loss")]
    assert losses == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 104.0), (5, 105.0), (6, 106.0)]
