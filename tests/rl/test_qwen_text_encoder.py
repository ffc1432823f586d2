"""Qwen-Image and Qwen-Image-Edit with their real prompt encoding: a tiny random Qwen2.5-VL text
encoder, ``Qwen2Tokenizer`` and (for edits) ``Qwen2VLProcessor``, saved and loaded like a hub
pipeline, through the policy adapters and one full RPO iteration on the CPU."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from PIL import Image

from arrpo.rl.config import build_config
from arrpo.rl.data import PromptItem
from arrpo.rl.judging import ChannelMeanJudge
from arrpo.rl.policies import load_policy
from arrpo.rl.trainer import RPOTrainer

pytest.importorskip("torchvision", reason="the Qwen-VL processors need torchvision (installed by .ci/run)")

SIZE = 32


@pytest.fixture(scope="module")
def qwen_dirs(tmp_path_factory):
    """family -> folder of a saved tiny Qwen-Image pipeline with a tiny Qwen2.5-VL text encoder."""
    from arrpo.testing.tiny_qwen import save_tiny_qwen_image

    root = tmp_path_factory.mktemp("tiny-qwen-image")
    return {"qwen-image": save_tiny_qwen_image(root / "t2i"),
            "qwen-image-edit": save_tiny_qwen_image(root / "edit", edit=True)}  # fmt: skip


def _policy(qwen_dirs, family):
    return load_policy(family, str(qwen_dirs[family]), height=SIZE, width=SIZE, max_sequence_length=64)


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text)["input_ids"])


def test_loaded_pipeline_has_the_real_qwen_parts(qwen_dirs):
    pipe = _policy(qwen_dirs, "qwen-image-edit").pipe
    assert type(pipe.text_encoder).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(pipe.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(pipe.processor).__name__ == "Qwen2VLProcessor"


def test_t2i_prompt_embeddings_cover_exactly_the_user_turn(qwen_dirs):
    policy = _policy(qwen_dirs, "qwen-image")
    prompts = ["a red apple", "an astronaut riding a horse in the desert at sunset"]
    cond = policy.encode(prompts)
    embeds, mask = cond["embeds"], cond["mask"]
    assert embeds.shape[0] == 2 and embeds.shape[2] == policy.transformer.config.joint_attention_dim
    # the pipeline drops its system prompt; what is left is the prompt and the turn's closing tokens
    tail = "<|im_end|>\n<|im_start|>assistant\n"
    expected = [_tokens(policy.pipe.tokenizer, p + tail) for p in prompts]
    assert mask.sum(dim=1).tolist() == expected
    assert embeds.shape[1] == max(expected)
    assert torch.isfinite(embeds).all()
    again = policy.encode(prompts[:1])
    assert torch.allclose(again["embeds"][0, : expected[0]], embeds[0, : expected[0]], atol=1e-5)  # no padding leak


def test_edit_embeddings_carry_the_source_image(qwen_dirs):
    policy = _policy(qwen_dirs, "qwen-image-edit")
    red, green = Image.new("RGB", (SIZE, SIZE), (200, 30, 30)), Image.new("RGB", (SIZE, SIZE), (10, 200, 10))
    cond_red = policy.encode(["make it blue"], [red])
    cond_green = policy.encode(["make it blue"], [green])
    processor = policy.pipe.processor
    # the 32 px source is resized to 56x56 for 14 px patches -> a (1, 4, 4) grid -> 4 image tokens
    vision = 1 + 4 + 1
    expected = vision + _tokens(policy.pipe.tokenizer, "make it blue<|im_end|>\n<|im_start|>assistant\n")
    assert cond_red["mask"].sum().item() == expected
    assert processor.image_processor.merge_size == 2
    assert not torch.allclose(cond_red["embeds"], cond_green["embeds"])  # the image reached the encoder
    assert cond_red["image_latents"].shape[0] == 1


@pytest.mark.parametrize("family", ["qwen-image", "qwen-image-edit"])
def test_one_rpo_iteration_with_real_prompt_encoding(tmp_path, qwen_dirs, family):
    prompts = [PromptItem("a red apple"), PromptItem("a cat on a sofa")]
    if family == "qwen-image-edit":
        source = tmp_path / "src.png"
        Image.new("RGB", (SIZE, SIZE), (200, 30, 30)).save(source)
        prompts = [PromptItem("make it blue", str(source)), PromptItem("add a moon", str(source))]
    cfg = build_config({
        "model": {"family": family, "pretrained": str(qwen_dirs[family]), "max_sequence_length": 64},
        "train": {"iterations": 1, "prompts_per_iteration": 1, "output_dir": str(tmp_path / "run"), "resume": None,
                  "tensorboard": False, "checkpoint_every": 0, "gallery_every": 0, "overlap": False},
        "optim": {"accumulate_samples": 2, "micro_batch": 2, "lr": 1e-2},
        "sampling": {"num_steps": 3},
        "lora": {"target_modules": None},
    }, preset="tiny-cpu")  # fmt: skip
    policy = _policy(qwen_dirs, family)
    trainer = RPOTrainer(cfg, policy=policy, judge=ChannelMeanJudge(), prompts=prompts,
                         accelerator=Accelerator(cpu=True))
    before = {n: p.detach().clone() for n, p in trainer.policy.transformer.named_parameters() if "lora" in n}
    (metrics,) = trainer.train()
    trainer.close()
    assert metrics["loss"] is not None and torch.isfinite(torch.tensor(metrics["loss"]))
    assert trainer.optimizer_steps == 1
    after = dict(trainer.policy.transformer.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before), "LoRA weights did not change"
