"""A Flow-GRPO run on 8 ranks (8 gloo processes on CPU): the sampler spreads each prompt's k
samples over the ranks (and over two calls); every rank gets the rewards of judging each
prompt's whole group at once."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
mp = pytest.importorskip("torch.multiprocessing")

from arrpo.client import RewardClient  # noqa: E402
from tests.integrations.trainers import gray_pil  # noqa: E402

WORLD = 8


def whole_groups(client: RewardClient, rows: list[dict], key_fields: tuple[str, ...]) -> list[float]:
    expected = [0.0] * len(rows)
    keys = [tuple(row[f] for f in key_fields) for row in rows]
    for key in dict.fromkeys(keys):
        members = [i for i, k in enumerate(keys) if k == key]
        source = gray_pil(rows[members[0]]["source"]) if "source" in key_fields else None
        result = client.group_rewards(rows[members[0]]["prompt"], [gray_pil(rows[i]["gray"]) for i in members], source=source)
        for pos, i in enumerate(members):
            expected[i] = result.rewards[pos]
    return expected


def test_flow_grpo_on_eight_ranks_equals_whole_group_judging(service, tmp_path):
    from tests.integrations.dist_worker import K, run_rank

    mp.spawn(run_rank, args=(WORLD, str(tmp_path / "init"), service.url, str(tmp_path)), nprocs=WORLD, join=True)
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]

    with RewardClient(service.url) as client:
        for iteration in range(2):
            rows = [row for rec in records for row in rec["t2i"] if row["iteration"] == iteration]
            assert len(rows) == WORLD * 4
            assert {rows.count(r) for r in rows} == {1}
            # the sampler really did spread groups over ranks
            ranks_per_prompt = {p: {r for r, rec in enumerate(records) for row in rec["t2i"]
                                    if row["iteration"] == iteration and row["prompt"] == p}
                                for p in {row["prompt"] for row in rows}}
            assert max(len(v) for v in ranks_per_prompt.values()) > 1
            assert all(sum(row["prompt"] == p for row in rows) == K for p in ranks_per_prompt)
            assert [row["reward"] for row in rows] == pytest.approx(whole_groups(client, rows, ("prompt",)))

        edits = [row for rec in records for row in rec["edit"]]
        assert [row["reward"] for row in edits] == pytest.approx(whole_groups(client, edits, ("prompt", "source")))
        assert len({row["prompt"] for row in edits}) < len({(row["prompt"], row["source"]) for row in edits})

        spread = [row for rec in records for row in rec["spread"]]  # groups over two calls
        assert [row["reward"] for row in spread] == pytest.approx(whole_groups(client, spread, ("prompt",)))

    for rec in records:  # fragments were refused on every rank, never scored
        assert rec["fragments"] != "scored" and "incomplete" in rec["fragments"]
        assert rec["stats"]["masked_samples"] == 0
    # each whole group judged exactly once (one owner): (8 + 8 + 8 + 16) groups x 6 pairs, + the checks above
    assert len(service.vlm.seen) == 2 * (8 + 8 + 8 + 16) * 6
    assert service.state.gate.rejected == 0
