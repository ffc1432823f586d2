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
