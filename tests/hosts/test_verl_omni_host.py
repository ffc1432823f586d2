"""verl-omni, driven as its reward loop drives a custom ``compute_score`` (tests/hosts/verl_omni_host.py):
several worker processes, streaming (a random worker per sample, in rollout order) and colocated
(padded, chunked) scoring, t2i and edits, groups of 2, 4, 16 and 24, validation, and the
masked-value rule under verl-omni's own advantage code."""

from __future__ import annotations

import logging
import uuid
from math import comb

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import arrpo.integrations.verl_omni as adapter  # noqa: E402
from arrpo.server import ServiceConfig  # noqa: E402
from tests.hosts import verl_omni_host as host  # noqa: E402
from tests.hosts.judges import garbage, invalid_when, official  # noqa: E402
from tests.integrations.trainers import closest_to_source_wins  # noqa: E402
from tests.serve.helpers import brighter_wins  # noqa: E402

PATH = "pkg://arrpo.integrations.verl_omni"  # the documented config line
FILE = adapter.__file__  # the same function loaded from its file


@pytest.fixture(scope="module")
def workers():
    """Three reward-loop worker processes, reused by every test (each test configures a run)."""
    started = host.start_workers(3)
    yield started
    for worker in started:
        worker.stop()


def run(workers, service, rows, *, path="streaming", n_workers=None, **settings):
    """One step: configure the run, score the batch, return (batch, outputs)."""
    chosen = workers[:n_workers] if n_workers else workers
    host.configure(chosen, PATH, {"url": service.url, "run_id": uuid.uuid4().hex, **settings})  # as Ray's job id
    batch = host.step_batch(rows)
    score = host.streaming_scores if path == "streaming" else host.colocate_scores
    return batch, score(chosen, batch)


def rows_for(k: int, prompts: int, *, edit: bool = False, start: int = 0) -> list[host.Row]:
    rows = []
    for p in range(prompts):
        grays = [20 + (p * 7 + 9 * i) % 230 for i in range(k)]
        assert len(set(grays)) == k
        rows.append(host.Row(f"prompt {start + p}", grays, index=start + p, source_gray=3 if edit else None))
    return rows


def expected(row: host.Row) -> list[float]:
    if row.source_gray is None:
        return official(row.grays)
    return official([-abs(g - row.source_gray) for g in row.grays])


def scores_by_row(batch, outputs, rows) -> list[list[float]]:
    for output in outputs:
        assert isinstance(output, dict), output
    values = host.rm_scores(outputs)[:, 0].tolist()
    out, position = [], 0
    for row in rows:
        out.append(values[position:position + len(row.grays)])
        position += len(row.grays)
    return out


@pytest.mark.parametrize(("k", "prompts", "edit", "path", "n_workers"), [
    (2, 5, False, "streaming", None),
    (2, 5, False, "colocate", 3),  # 10 samples on 3 workers: 2 padding copies of prompt 0's group
    (4, 3, True, "streaming", None),
    (4, 3, False, "colocate", 2),
    (16, 2, False, "streaming", None),
    (16, 1, True, "colocate", 3),  # one group over three workers' chunks, plus 2 padding copies
    (24, 1, False, "streaming", None),
    (24, 1, True, "colocate", 3),
])
def test_rewards_equal_whole_group_judging_with_one_judge_call_per_pair(
    workers, start_service, k, prompts, edit, path, n_workers,
):
    service = start_service(closest_to_source_wins if edit else brighter_wins, config=ServiceConfig(max_images=24))
    rows = rows_for(k, prompts, edit=edit)
    batch, outputs = run(workers, service, rows, path=path, n_workers=n_workers, samples_per_prompt=k)
    got = scores_by_row(batch, outputs, rows)
    for row, values in zip(rows, got, strict=True):
        assert values == pytest.approx(expected(row), abs=1e-6)
    assert all(o["reward_extra_info"]["arrpo_mask"] == 1.0 for o in outputs)
    assert service.vlm.requests == prompts * comb(k, 2)  # padding copies and the spread cost nothing


def test_a_masked_group_has_zero_advantage_and_moves_no_other_group(workers, start_service):
    service = start_service(invalid_when({77}))
    rows = [host.Row("a cat", [30, 77, 150, 220], 0), host.Row("a dog", [40, 90, 160, 210], 1),
            host.Row("a fox", [50, 100, 170, 230], 2)]
    _, refused = run(workers, service, rows, samples_per_prompt=4, on_bad_verdict="drop_pair")  # batch std
    assert any(isinstance(o, Exception) and "global_std=False" in str(o) for o in refused[:4])
    rows = [host.Row(r.prompt, r.grays, r.index + 10) for r in rows]
    batch, outputs = run(workers, service, rows, samples_per_prompt=4, on_bad_verdict="drop_pair", host_std="group")
    scores = host.rm_scores(outputs).expand(-1, 3)  # sample-level rewards over 3 timesteps
    index = np.array([item["uid"] for item in batch], dtype=object)
    masked = host.flow_grpo_outcome_advantage(scores, index, global_std=False)
    assert masked[:4].abs().max().item() == 0.0  # the partly invalid group: every sample 0.0, zero advantage
    assert [o["reward_extra_info"]["arrpo_group_masked"] for o in outputs[:4]] == [1.0] * 4
    alone = host.flow_grpo_outcome_advantage(scores[4:], index[4:], global_std=False)
    assert torch.equal(masked[4:], alone)  # the other groups' advantages are their own


def test_a_dead_step_is_loud_in_both_logs_and_a_run_of_them_fails(workers, start_service, caplog):
    service = start_service(garbage)
    caplog.set_level(logging.WARNING, logger="arrpo.integrations")
    failures = []
    for step in range(4):
        rows = rows_for(2, 3, start=10 * step)
        _, outputs = run(workers, service, rows, samples_per_prompt=2, step_samples=2, max_dead_steps=2)
        failures += [o for o in outputs if isinstance(o, Exception)]
        assert all(o["reward_score"] == 0.0 for o in outputs if isinstance(o, dict))
    assert any("DeadRunError" in str(e) and "in a row with no training signal" in str(e) for e in failures)
    served = [r.getMessage() for r in caplog.records if "gathered group" in r.getMessage()]
    assert served and "2 of 2 samples (100%) carry no training signal" in served[0]
    assert "invalid verdict" in served[0]


def test_a_fragment_is_never_judged_and_every_member_fails_at_the_timeout(workers, start_service):
    service = start_service()
    rows = [host.Row("a cat", [30, 80, 130], 0)]  # 3 of the configured 4
    _, outputs = run(workers, service, rows, samples_per_prompt=4, group_timeout=1.5)
    assert all(isinstance(o, host.WorkerError) for o in outputs)
    assert all("group_incomplete" in str(o) and "3 of 4 members" in str(o) for o in outputs)
    assert service.vlm.requests == 0


def test_validation_with_one_sample_per_prompt_needs_an_anchor_and_says_how(workers, start_service):
    service = start_service()
    plain = [host.Row("a cat", [90], 0, split="test"), host.Row("a dog", [200], 1, split="test")]
    _, outputs = run(workers, service, plain, samples_per_prompt=4)
    assert all(isinstance(o, host.WorkerError) and "val_kwargs.n" in str(o) for o in outputs)
    anchored = [host.Row("a cat", [90], 0, split="test", anchor_gray=128),
                host.Row("a dog", [200], 1, split="test", anchor_gray=128)]
    _, outputs = run(workers, service, anchored, samples_per_prompt=4)
    assert host.rm_scores(outputs)[:, 0].tolist() == pytest.approx([-0.1, 1.0])
    pairs = [host.Row("a cat", [90, 30], 0, split="test"), host.Row("a dog", [200, 10], 1, split="test")]
    _, outputs = run(workers, service, pairs, samples_per_prompt=4, val_samples_per_prompt=2)
    assert host.rm_scores(outputs)[:, 0].tolist() == pytest.approx([1.0, -0.1, 1.0, -0.1])


def test_pointwise_mode_judges_each_sample_against_its_rows_anchor(workers, start_service):
    service = start_service()
    rows = [host.Row("a cat", [30, 100, 160, 220], 0, anchor_gray=128)]
    _, outputs = run(workers, service, rows, samples_per_prompt=4, mode="pointwise")
    assert host.rm_scores(outputs)[:, 0].tolist() == pytest.approx([-0.1, -0.1, 1.0, 1.0])
    assert service.vlm.requests == 4


def test_with_a_reward_router_configured_and_bad_settings(workers, start_service):
    service = start_service()
    host.configure(workers, FILE, {"url": service.url, "samples_per_prompt": 2}, router_address="10.0.0.1:8000")
    batch = host.step_batch([host.Row("a cat", [30, 200], 0)])
    assert host.rm_scores(host.streaming_scores(workers, batch))[:, 0].tolist() == pytest.approx([-0.1, 1.0])
    for settings, words in [({}, "samples_per_prompt must be set"), ({"samples_per_prompt": 2, "presett": "x"},
                                                                     "presett")]:
        host.configure(workers, PATH, {"url": service.url, **settings})
        outputs = host.streaming_scores(workers, host.step_batch([host.Row("a dog", [30, 200], 1)]))
        assert all(isinstance(o, host.WorkerError) and words in str(o) for o in outputs)


def test_a_float_image_is_refused_by_verl_omnis_own_check_before_the_reward(workers, start_service):
    service = start_service()
    host.configure(workers, PATH, {"url": service.url, "samples_per_prompt": 2})
    batch = host.step_batch([host.Row("a cat", [30, 200], 0)])
    for item in batch:
        item["responses"] = item["responses"].float() / 255
    outputs = host.streaming_scores(workers, batch)
    assert all(isinstance(o, host.WorkerError) and "Expected uint8" in str(o) for o in outputs)
    assert service.vlm.requests == 0
