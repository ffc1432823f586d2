"""Flow-GRPO on 1, 2 and 4 gloo processes: a prompt's k = 16 copies spread over ranks and over
two sampling batches (the new sampler), or two whole groups of 16 per batch (the old one): the
rewards equal judging each whole group once, the service never answers a 503, and an epoch that
ends with a fragment fails on every rank."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
mp = pytest.importorskip("torch.multiprocessing")

from tests.hosts.judges import official  # noqa: E402


def expected(rows: list[dict]) -> list[float]:
    by_group: dict[str, list[int]] = {}
    for row in rows:
        by_group.setdefault(row["group"], []).append(row["gray"])
    values = {key: dict(zip(g, official(g), strict=True)) for key, g in by_group.items()}
    return [values[row["group"]][row["gray"]] for row in rows]


@pytest.mark.parametrize("world", [1, 2, 4])
def test_flow_grpo_ranks(service, tmp_path, world):
    from tests.hosts.flow_grpo_ranks import run_rank

    mp.spawn(run_rank, args=(world, str(tmp_path / "init"), service.url, str(tmp_path)), nprocs=world, join=True)
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    for scenario in ("spread", "whole"):
        rows = [row for rec in records for row in rec[scenario]]
        assert all(sum(r["group"] == key for r in rows) == 16 for key in {r["group"] for r in rows})
        assert [r["reward"] for r in rows] == pytest.approx(expected(rows), abs=1e-6)
    assert all("8 of 16 samples" in rec["fragment"] for rec in records)
    assert service.state.gate.rejected == 0  # no self-inflicted 503
    # every whole group judged once: 1 (spread) + 2 x 2 (whole) groups of 120 pairs
    assert len(service.vlm.seen) == 5 * 120


@pytest.mark.parametrize("world", [2, 4])
def test_flow_grpo_ranks_masked_group_under_the_default_global_std(start_service, tmp_path, world):
    """One group of four masked (its pairs unreadable), Flow-GRPO's default batch std, groups
    spread over ranks and two sampling batches: under Flow-GRPO's own tracker the masked samples
    get advantage 0 and every other sample exactly the advantage it has in the same epoch
    without the masked group (the std-preserving fill), on every rank."""
    import numpy as np

    from tests.hosts.flow_grpo_host import PerPromptStatTracker
    from tests.hosts.flow_grpo_ranks import PROMPTS, masked_gray, run_rank_masked
    from tests.hosts.judges import invalid_when

    service = start_service(invalid_when({masked_gray(2, 0)}))
    mp.spawn(run_rank_masked, args=(world, str(tmp_path / "init"), service.url, str(tmp_path)), nprocs=world,
             join=True)
    rows = [row for r in range(world) for row in json.loads((tmp_path / f"masked{r}.json").read_text())]
    assert len(rows) == 32
    masked = [row for row in rows if row["prompt"] == PROMPTS[2]]
    valid = [row for row in rows if row["prompt"] != PROMPTS[2]]
    assert len(masked) == 8 and all(a == pytest.approx(0.0, abs=1e-6) for row in masked for a in row["advantage"])
    # the reference: Flow-GRPO's tracker over the valid groups alone, with the whole-group rewards
    by_prompt: dict[str, list[int]] = {}
    for row in valid:
        by_prompt.setdefault(row["prompt"], []).append(row["gray"])
    truth = {p: dict(zip(g, official(g), strict=True)) for p, g in by_prompt.items()}
    assert [row["avg"] for row in valid] == pytest.approx([truth[r["prompt"]][r["gray"]] for r in valid], abs=1e-6)
    rewards = np.array([[truth[r["prompt"]][r["gray"]]] * 2 for r in valid], dtype=np.float32)
    reference = PerPromptStatTracker(global_std=True).update([r["prompt"] for r in valid], rewards)
    got = np.array([row["advantage"] for row in valid])
    assert np.allclose(got, reference, rtol=1e-5, atol=1e-5)
    assert service.state.gate.rejected == 0
