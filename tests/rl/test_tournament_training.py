"""RPO with ``reward.pairing: tournament`` on the tiny CPU pipeline: each group judged round by
round in the background, as many verdicts as the tournament's comparisons, deterministic for a seed."""

from __future__ import annotations

import pytest
from accelerate import Accelerator
from tests.rl.test_trainer import PROMPTS, _config

from arrpo.rl.config import build_config
from arrpo.rl.judging import ChannelMeanJudge
from arrpo.rl.trainer import RPOTrainer
from arrpo.tournament import Tournament, default_rounds


class Recording(ChannelMeanJudge):
    """The builtin judge, recording the ids (``...-p<k>-<i>v<j>``) of the comparisons it judged."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ids: list[str] = []

    async def judge(self, comparison):
        self.ids.append(comparison.id)
        return await super().judge(comparison)


def _run(tmp_path, make_policy, judge, **reward):
    cfg = _config(tmp_path, sampling={"group_size": 8}, optim={"accumulate_samples": 8, "micro_batch": 4},
                  train={"iterations": 2, "overlap": True, "prompts_per_iteration": 1},
                  reward={"pairing": "tournament", "on_bad_verdict": "drop_pair", **reward})
    trainer = RPOTrainer(cfg, policy=make_policy("sd3"), judge=judge, prompts=PROMPTS,
                         accelerator=Accelerator(cpu=True))
    batches, verdicts = [], []
    original = trainer.advantages

    def advantages(batch, got):
        batches.append([list(p) for p in batch.pairs])
        verdicts.append([v.winner for v in got])
        return original(batch, got)

    trainer.advantages = advantages
    history = trainer.train()
    trainer.close()
    return history, batches, verdicts


@pytest.mark.parametrize("rounds", [None, 2])
def test_tournament_groups_are_judged_round_by_round(tmp_path, make_policy, rounds):
    judge = Recording()
    history, batches, verdicts = _run(tmp_path / "a", make_policy, judge, tournament_rounds=rounds)
    per_group = (rounds or default_rounds(8)) * 4  # 16 (or 8) instead of all_pairs' 28
    assert judge.calls == len(judge.ids) == 2 * per_group
    assert [len(pairs[0]) for pairs in batches] == [per_group] * 2
    assert [len(v) for v in verdicts] == [per_group] * 2
    for pairs in batches:  # rounds of 4 pairs, no sample twice in a round
        assert all(len({k for p in pairs[0][r:r + 4] for k in p}) == 8 for r in range(0, per_group, 4))
    assert all(h["trained_fraction"] > 0 and h["loss"] is not None for h in history)
    again = Recording()
    _, batches_again, verdicts_again = _run(tmp_path / "b", make_policy, again, tournament_rounds=rounds)
    assert batches_again == batches and verdicts_again == verdicts and again.ids == judge.ids


def test_the_pairs_played_are_the_tournaments_for_the_seed(tmp_path, make_policy):
    judge = Recording()
    _, batches, verdicts = _run(tmp_path, make_policy, judge)
    for iteration, (pairs, winners) in enumerate(zip(batches, verdicts, strict=True)):
        plan = Tournament(8, seed=f"42:{iteration}:0:0", on_bad_verdict="drop_pair")  # train.seed, rank 0, p 0
        done = 0
        while round_ := plan.next_round():
            assert [tuple(p) for p in pairs[0][done:done + len(round_)]] == round_
            plan.record(round_, winners[done:done + len(round_)])
            done += len(round_)
        assert done == len(pairs[0])


def test_a_failing_judge_masks_groups_without_stopping_training(tmp_path, make_policy):
    history, _, verdicts = _run(tmp_path, make_policy, ChannelMeanJudge(raise_every=3))
    assert all(w.count("invalid") >= 1 for w in verdicts)  # guarded: an exception is an invalid verdict
    assert all(h["invalid_rate"] > 0 for h in history)


def test_tournament_rounds_need_the_tournament_pairing():
    with pytest.raises(ValueError, match="tournament_rounds"):
        build_config({"reward": {"pairing": "all_pairs", "tournament_rounds": 3}}, preset="tiny-cpu")
    with pytest.raises(ValueError, match="tournament_rounds"):
        build_config({"reward": {"pairing": "tournament", "tournament_rounds": 0}}, preset="tiny-cpu")
    with pytest.raises(ValueError, match="a round robin takes"):  # tiny-cpu's groups of 2: one round at most
        build_config({"reward": {"pairing": "tournament", "tournament_rounds": 2}}, preset="tiny-cpu")


def test_a_pending_tournament_is_played_again_on_resume(tmp_path, make_policy):
    def trainer(where):
        cfg = _config(where, sampling={"group_size": 8}, optim={"accumulate_samples": 8, "micro_batch": 4},
                      reward={"pairing": "tournament"},
                      train={"iterations": 2, "overlap": True, "checkpoint_every": 1, "keep_checkpoints": 0})
        made = RPOTrainer(cfg, policy=make_policy("sd3"), judge=ChannelMeanJudge(), prompts=PROMPTS,
                          accelerator=Accelerator(cpu=True))
        played = []
        original = made.advantages
        made.advantages = lambda batch, got: (played.append([list(p) for p in batch.pairs]), original(batch, got))[1]
        return made, played

    full, played = trainer(tmp_path / "a")
    full.train()  # checkpoint after iteration 1 holds iteration 2's batch, rolled out but not trained
    full.close()
    resumed, replayed = trainer(tmp_path / "b")
    resumed.resume(tmp_path / "a" / "run" / "checkpoints" / "it000001")
    assert len(resumed.pending) == 1 and resumed.pending[0].pairs == [[]]  # planned while judging
    resumed.train()
    resumed.close()
    assert replayed == played[1:] and len(replayed[0][0]) == default_rounds(8) * 4
