"""Fixtures for the RPO tests: tiny random diffusers pipelines saved to and loaded from temp dirs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

# The CI machine has 2 cores shared with other jobs; one intra-op thread is ~10x faster for tiny models.
torch.set_num_threads(1)

SIZE = 32


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """family -> directory of a saved tiny pipeline (built once per session)."""
    from arrpo.rl.tiny import TINY_FAMILIES, save_tiny_pipeline

    root = tmp_path_factory.mktemp("tiny")
    return {fam: str(save_tiny_pipeline(fam, root / fam)) for fam in TINY_FAMILIES}


def _tiny_qwen(edit: bool):
    """A Qwen-Image(-Edit) pipeline with tiny random transformer and VAE; no text encoder (needs real
    weights), so ``encode_prompt`` is replaced by random embeddings of the right shape."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )

    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, axes_dims_rope=(8, 4, 4),
    )  # fmt: skip
    vae = AutoencoderKLQwenImage(
        base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[False],
        latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
    )  # fmt: skip
    parts = dict(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=None, tokenizer=None)
    pipe = QwenImageEditPipeline(processor=None, **parts) if edit else QwenImagePipeline(**parts)

    def encode_prompt(prompt, device=None, image=None, max_sequence_length=None, **_):
        gen = torch.Generator().manual_seed(len(prompt[0]))
        embeds = torch.randn(len(prompt), 7, 16, generator=gen)
        return embeds, torch.ones(len(prompt), 7, dtype=torch.long)

    pipe.encode_prompt = encode_prompt
    return pipe


@pytest.fixture
def make_policy(tiny_dirs):
    """Build a fresh policy adapter of a family (loaded with ``from_pretrained`` where offline-buildable)."""
    from arrpo.rl.policies import FAMILIES, load_policy

    def make(family: str):
        kwargs = dict(height=SIZE, width=SIZE, max_sequence_length=16, guidance=3.5)
        if family.startswith("qwen"):
            return FAMILIES[family][0](_tiny_qwen(edit=family.endswith("edit")), **kwargs)
        return load_policy(family, tiny_dirs[family], **kwargs)

    return make


@pytest.fixture
def source_image():
    """A solid-colour source image for editing families."""
    from PIL import Image

    return lambda color=(200, 30, 30): Image.new("RGB", (SIZE, SIZE), color)
