"""Training fidelity to the authors' setup: the image the judge sees, LoRA init, guidance 0,
LoRA targets of the editing preset, and the dtype a policy loads in."""

import asyncio
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from arrpo.rl.config import build_config
from arrpo.rl.data import PromptItem
from arrpo.rl.lora import add_lora
from arrpo.rl.policies import ATTENTION_TARGETS, DEFAULT_LORA_TARGETS, load_policy
from arrpo.rl.sde import sigma_schedule
from arrpo.rl.trainer import RPOTrainer
from arrpo.schema import Verdict

PROMPTS = [PromptItem("a red apple"), PromptItem("a cat on a sofa")]


class RecordingJudge:
    """Keeps every comparison it is asked about; prefers image A."""

    def __init__(self):
        self.seen = []

    async def judge(self, comparison):
        self.seen.append(comparison)
        await asyncio.sleep(0)
        return Verdict(id=comparison.id, winner="A")


def _trainer(tmp_path, make_policy, judge, **reward):
    cfg = build_config({
        "train": {"iterations": 1, "output_dir": str(tmp_path / "run"), "resume": None, "tensorboard": False,
                  "checkpoint_every": 0, "gallery_every": 0, "prompts_per_iteration": 1, "overlap": False},
        "sampling": {"num_steps": 4, "eta": 1.0},
        "optim": {"accumulate_samples": 2, "micro_batch": 2},
        "reward": reward,
    }, preset="tiny-cpu")  # fmt: skip
    return RPOTrainer(cfg, policy=make_policy("sd3"), judge=judge, prompts=PROMPTS, accelerator=Accelerator(cpu=True))


def _pixels(images):
    return [np.asarray(im.to_pil() if hasattr(im, "to_pil") else im, dtype=np.int16) for im in images]


def test_the_judge_sees_the_last_steps_x0_prediction(tmp_path, make_policy):
    judge = RecordingJudge()
    tr = _trainer(tmp_path, make_policy, judge)
    # a non-zero adapter, so the policy is not the base model
    for name, p in tr.policy.transformer.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.3)
    batch = tr.rollout_batch(tr.stream.next(1, 0, 1))
    tr.submit(batch)
    tr._verdicts(batch)
    (chunk,) = batch.chunks
    sigmas = sigma_schedule(4, 3.0)
    x = chunk.latents[:, -2]  # the state the last step starts from
    with torch.no_grad():
        v = tr.policy.velocity(x, sigmas[-2].expand(x.shape[0]), chunk.cond)
    expected = _pixels(tr.policy.decode(x - sigmas[-2] * v))
    noisy = _pixels(tr.policy.decode(chunk.latents[:, -1]))
    got = _pixels(batch.images)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(got, noisy, strict=True))
    (comparison,) = judge.seen  # group of 2 → one pair; the judge got exactly these images
    assert np.array_equal(_pixels([comparison.image_a])[0], expected[0])
    assert np.array_equal(_pixels([comparison.image_b])[0], expected[1])
    tr.close()


def test_final_sample_remains_an_option(tmp_path, make_policy):
    tr = _trainer(tmp_path, make_policy, RecordingJudge(), reward_image="final_sample")
    batch = tr.rollout_batch(tr.stream.next(1, 0, 1))
    noisy = _pixels(tr.policy.decode(batch.chunks[0].latents[:, -1]))
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(batch.images), noisy, strict=True))
    tr.close()


def test_lora_starts_with_peft_default_init(make_policy):
    """B = 0 and A ~ U(±1/√fan_in) (std 1/√(3·fan_in)), not peft's 'gaussian' (std 1/rank)."""
    policy = make_policy("flux")
    add_lora(policy.transformer, rank=16, alpha=32, target_modules=ATTENTION_TARGETS)
    normalised = []
    for name, p in policy.transformer.named_parameters():
        if "lora_B" in name:
            assert torch.count_nonzero(p) == 0, name
        if "lora_A" in name:
            fan_in = p.shape[1]
            assert p.abs().max() <= 1 / math.sqrt(fan_in) + 1e-6, name
            normalised.append(p.detach().flatten() * math.sqrt(3 * fan_in))
    values = torch.cat(normalised)
    assert values.numel() > 1000
    assert abs(float(values.std()) - 1.0) < 0.1  # "gaussian" at rank 16: (1/16)·√(3·fan_in) ≈ 0.6 here


def test_flux_guidance_zero_is_kept(make_policy):
    policy = make_policy("flux")
    policy.guidance = 0.0
    seen = []
    inner = policy.model

    def spy(**kwargs):
        seen.append(kwargs["guidance"])
        return inner(**kwargs)

    policy.model = spy
    cond = policy.encode(["a red apple"])
    with torch.no_grad():
        policy.velocity(policy.initial_noise(1, torch.Generator().manual_seed(0)), torch.full((1,), 0.5), cond)
    assert seen and torch.equal(seen[0], torch.zeros(1))
    policy.guidance = None  # unset: FLUX-dev's usual 3.5
    with torch.no_grad():
        policy.velocity(policy.initial_noise(1, torch.Generator().manual_seed(0)), torch.full((1,), 0.5), cond)
    assert float(seen[1][0]) == 3.5


def test_qwen_edit_preset_trains_the_authors_lora_targets():
    cfg = build_config(preset="official-qwen-edit")
    assert cfg.lora.target_modules == ["to_q", "to_k", "to_v", "to_out.0"]
    assert DEFAULT_LORA_TARGETS["qwen-image-edit"] == ["to_q", "to_k", "to_v", "to_out.0"]


def test_policy_loads_in_the_configured_dtype(tiny_dirs):
    policy = load_policy("sd3", tiny_dirs["sd3"], dtype="bfloat16", height=32, width=32, max_sequence_length=16)
    assert {p.dtype for p in policy.transformer.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in policy.pipe.vae.parameters()} == {torch.bfloat16}


def test_a_diffusers_that_ignores_dtype_is_a_clear_error(tiny_dirs, monkeypatch):
    import diffusers

    original = diffusers.StableDiffusion3Pipeline.from_pretrained.__func__

    def old_style(cls, path, dtype=None, **kwargs):  # what diffusers < 0.40 does: dtype= is ignored
        return original(cls, path, **kwargs)

    monkeypatch.setattr(diffusers.StableDiffusion3Pipeline, "from_pretrained", classmethod(old_style))
    with pytest.raises(RuntimeError, match=r"not the configured bfloat16.*diffusers>=0\.40"):
        load_policy("sd3", tiny_dirs["sd3"], dtype="bfloat16")


def test_pyproject_requires_a_diffusers_with_dtype_and_the_edit_pipelines():
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    major, minor = map(int, re.search(r'"diffusers>=(\d+)\.(\d+)', text).groups())
    assert (major, minor) >= (0, 40)


def test_pending_batches_keep_their_x0_through_a_checkpoint(tmp_path, make_policy):
    from arrpo.rl.trainer import _pack_batch, _unpack_batch

    tr = _trainer(tmp_path, make_policy, RecordingJudge())
    batch = tr.rollout_batch(tr.stream.next(1, 0, 1))
    restored = _unpack_batch(_pack_batch(batch), tr.policy.device)
    assert torch.equal(restored.chunks[0].final_x0, batch.chunks[0].final_x0)
    tr._decode(restored)
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(restored.images), _pixels(batch.images), strict=True))
    tr.close()
