"""The end-to-end proof that signs, log-probs and clipping are right: a tiny SD3 pipeline learns
what a deterministic programmatic judge prefers, and the opposite when the preference is reversed."""

import pytest
from accelerate import Accelerator

from arrpo.rl.config import build_config
from arrpo.rl.data import PromptItem
from arrpo.rl.evaluate import head_to_head
from arrpo.rl.judging import ChannelMeanJudge
from arrpo.rl.trainer import RPOTrainer

TRAIN = ["a red apple", "a cat on a sofa", "mountains at sunrise", "a green robot", "an astronaut", "a watercolor"]
HELD_OUT_SEEDS = list(range(10_000, 10_024))


@pytest.mark.slow
@pytest.mark.parametrize("reverse", [False, True])
def test_policy_learns_the_judges_preference(tmp_path, tiny_dirs, reverse):
    cfg = build_config({
        "model": {"pretrained": tiny_dirs["sd3"]},
        "train": {"iterations": 15, "output_dir": str(tmp_path), "resume": None, "tensorboard": False,
                  "checkpoint_every": 0, "gallery_every": 0},
    }, preset="tiny-cpu")  # fmt: skip
    trainer = RPOTrainer(cfg, judge=ChannelMeanJudge(reverse=reverse), prompts=[PromptItem(p) for p in TRAIN], accelerator=Accelerator(cpu=True))
    history = trainer.train()
    trainer.close()
    assert trainer.optimizer_steps == 15 and trainer.skipped_updates == 0
    prompts = [TRAIN[k % len(TRAIN)] for k in range(len(HELD_OUT_SEEDS))]
    redder = ChannelMeanJudge(reverse=False)  # always scored as "more red wins"
    result = head_to_head(trainer.policy, redder, prompts, HELD_OUT_SEEDS, num_steps=cfg.sampling.num_steps, shift=cfg.sampling.shift)
    assert result["invalid"] == 0
    if reverse:
        assert result["win_rate"] <= 0.3, (result, history[-1])
    else:
        assert result["win_rate"] >= 0.7, (result, history[-1])
