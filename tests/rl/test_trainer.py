import pytest
import torch
from accelerate import Accelerator

from arrpo.rl.config import build_config
from arrpo.rl.data import PromptItem
from arrpo.rl.judging import ChannelMeanJudge
from arrpo.rl.trainer import RPOTrainer

PROMPTS = [PromptItem(p) for p in ["a red apple", "a cat on a sofa", "mountains", "a green robot", "an astronaut"]]


def _config(tmp_path, **sections):
    data = {
        "train": {"iterations": 4, "prompts_per_iteration": 1, "output_dir": str(tmp_path / "run"), "resume": None,
                  "tensorboard": False, "checkpoint_every": 0, "gallery_every": 0, "judge_timeout": 5.0},
        "optim": {"accumulate_samples": 2, "micro_batch": 2, "lr": 1e-2},
        "sampling": {"num_steps": 3},
        "objective": {"beta": 0.01},
    }  # fmt: skip
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return build_config(data, preset="tiny-cpu")


def _trainer(tmp_path, make_policy, family="sd3", judge=None, prompts=None, **sections):
    cfg = _config(tmp_path, **sections)
    policy = make_policy(family)
    return RPOTrainer(cfg, policy=policy, judge=judge or ChannelMeanJudge(), prompts=prompts or PROMPTS, accelerator=Accelerator(cpu=True))


def _lora(trainer):
    return {n: p.detach().clone() for n, p in trainer.policy.transformer.named_parameters() if "lora" in n}


def _base(trainer):
    return {n: p.detach().clone() for n, p in trainer.policy.transformer.named_parameters() if "lora" not in n}


def test_accumulation_steps_once_every_n_samples(tmp_path, make_policy):
    tr = _trainer(tmp_path, make_policy, optim={"accumulate_samples": 6, "micro_batch": 2},
                  train={"iterations": 6, "overlap": False})  # fmt: skip
    calls = []
    tr.optimizer.register_step_pre_hook(lambda *_: calls.append(tr.samples_seen))  # step itself untouched
    history = tr.train()
    tr.close()
    # 6 iterations x 2 samples = 12 samples -> steps after samples 6 and 12, across iteration boundaries
    assert calls == [6, 12]
    assert tr.optimizer_steps == 2 and [h["optimizer_steps"] for h in history] == [0, 0, 1, 1, 1, 2]


@pytest.mark.parametrize("family", ["sd3", "flux", "flux-kontext", "qwen-image", "qwen-image-edit"])
def test_one_full_iteration_per_adapter(tmp_path, make_policy, family, source_image):
    prompts = PROMPTS
    if family in ("flux-kontext", "qwen-image-edit"):
        path = tmp_path / "src.png"
        source_image().save(path)
        prompts = [PromptItem("make it blue", str(path)), PromptItem("add a moon", str(path))]
    tr = _trainer(tmp_path, make_policy, family, prompts=prompts, train={"iterations": 1, "overlap": False},
                  lora={"target_modules": None})  # fmt: skip
    before, base = _lora(tr), _base(tr)
    x = tr.policy.initial_noise(1, torch.Generator().manual_seed(5))
    cond = tr.policy.encode(["probe"], [source_image()] if tr.policy.needs_source else None)
    with torch.no_grad(), tr.policy.reference():
        ref_before = tr.policy.velocity(x, torch.full((1,), 0.5), cond)
    (metrics,) = tr.train()
    tr.close()
    assert metrics["loss"] is not None and torch.isfinite(torch.tensor(metrics["loss"]))
    assert metrics["ratio_min"] == metrics["ratio_max"] == 1.0
    assert tr.optimizer_steps == 1
    after = _lora(tr)
    assert any(not torch.equal(before[n], after[n]) for n in before), "LoRA weights did not change"
    assert all(torch.equal(base[n], p) for n, p in _base(tr).items()), "base weights changed"
    with torch.no_grad(), tr.policy.reference():
        assert torch.equal(ref_before, tr.policy.velocity(x, torch.full((1,), 0.5), cond))


@pytest.mark.parametrize("overlap", [False, True])
def test_resume_continues_exactly(tmp_path, make_policy, overlap):
    sections = dict(train={"iterations": 5, "overlap": overlap}, optim={"accumulate_samples": 4, "micro_batch": 2})
    full = _trainer(tmp_path / "a", make_policy, **sections)
    history = full.train()
    full.close()

    first = _trainer(tmp_path / "b", make_policy, **{**sections, "train": {"iterations": 3, "overlap": overlap}})
    first.train()  # 3 iterations: stops inside an accumulation window (6 samples, window of 4)
    ckpt = first.save_checkpoint()
    first.close()

    resumed = _trainer(tmp_path / "c", make_policy, **sections)
    resumed.resume(ckpt)
    assert resumed.iteration == 3
    rest = resumed.train()
    resumed.close()
    assert [h["loss"] for h in rest] == [h["loss"] for h in history[3:]]
    assert [h["grad_norm"] for h in rest] == [h["grad_norm"] for h in history[3:]]
    assert all(torch.equal(a, b) for a, b in zip(_lora(full).values(), _lora(resumed).values(), strict=True))


def test_invalid_raising_and_slow_judges_do_not_crash(tmp_path, make_policy):
    class Slow(ChannelMeanJudge):
        async def judge(self, comparison):
            if self.calls == 2:
                self.calls += 1
                import asyncio

                await asyncio.sleep(30)
            return await super().judge(comparison)

    judge = Slow(fail_every=4, raise_every=5)
    tr = _trainer(tmp_path, make_policy, judge=judge, train={"iterations": 6, "judge_timeout": 0.5, "overlap": True})
    history = tr.train()
    tr.close()
    masked = [h["masked_groups"] for h in history]
    assert sum(masked) >= 3  # one timeout, one scripted invalid, one exception
    assert all(h["invalid_rate"] in (0.0, 1.0) for h in history)
    assert sum(h["invalid_rate"] for h in history) == sum(masked)
    assert all(h["loss"] is None for h, m in zip(history, masked, strict=True) if m)
    assert any(h["loss"] is not None for h in history)


def test_nan_guard_skips_the_update(tmp_path, make_policy):
    tr = _trainer(tmp_path, make_policy, train={"iterations": 2, "overlap": False})
    before = _lora(tr)
    param = next(p for n, p in tr.policy.transformer.named_parameters() if "lora_A" in n)
    hook = param.register_hook(lambda g: torch.full_like(g, float("nan")))
    metrics = tr.step()
    hook.remove()
    assert metrics["skipped_updates"] == 1 and metrics["grad_norm"] is None
    assert all(torch.equal(before[n], p) for n, p in _lora(tr).items())
    metrics = tr.step()
    tr.close()
    assert metrics["skipped_updates"] == 1 and tr.optimizer_steps == 1


def test_metrics_gallery_and_checkpoints_are_written(tmp_path, make_policy):
    tr = _trainer(tmp_path, make_policy, train={"iterations": 2, "tensorboard": True, "gallery_every": 1,
                                                "checkpoint_every": 1, "keep_checkpoints": 1})  # fmt: skip
    tr.train()
    tr.close()
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "time/judge_wait" in lines[0]
    assert list((run / "gallery").glob("*.png")) and list((run / "tensorboard").iterdir())
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["it000002"]


def test_win_rate_against_the_reference_is_logged_every_n_iterations(tmp_path, make_policy):
    prompts_file = tmp_path / "held_out.txt"
    prompts_file.write_text("a red balloon\na blue door\n")
    judged = []

    class CountingJudge(ChannelMeanJudge):
        async def judge(self, comparison):
            judged.append(comparison.id)
            return await super().judge(comparison)

    tr = _trainer(tmp_path, make_policy, judge=CountingJudge(),
                  data={"eval_prompts": str(prompts_file)},
                  train={"iterations": 2, "eval_every": 2, "eval_seeds": 3, "overlap": False})  # fmt: skip
    history = tr.train()
    tr.close()
    assert "eval/win_rate" not in history[0]
    final = history[1]
    assert final["eval/win"] + final["eval/loss"] + final["eval/tie"] + final["eval/invalid"] == 6
    assert 0.0 <= final["eval/win_rate"] <= 1.0
    assert judged.count("0") == 1 and len([j for j in judged if j.isdigit()]) == 6  # 2 prompts × 3 seeds


def test_fp16_loss_scaling_is_undone_before_clipping_and_stepping(tmp_path, make_policy):
    """Under fp16 mixed precision accelerate scales the loss; the trainer owns the optimizer, so it
    must unscale before clipping: the same run with a loss scale of 1024 gives the same update."""
    runs = []
    for scale in (None, 1024.0):
        tr = _trainer(tmp_path / str(scale), make_policy, train={"iterations": 2, "overlap": False})
        if scale is not None:
            tr.acc.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        history = tr.train()
        tr.close()
        runs.append(([h["grad_norm"] for h in history], _lora(tr)))
    (norms, lora), (scaled_norms, scaled_lora) = runs
    assert scaled_norms == pytest.approx(norms, rel=1e-4)
    assert all(torch.allclose(lora[n], scaled_lora[n], atol=1e-6) for n in lora)
