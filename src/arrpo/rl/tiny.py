"""Tiny diffusers pipelines with random weights, built offline, for tests, demos and benchmarks.

They are real pipelines (real classes, real ``save_pretrained``/``from_pretrained`` round trip) with
a few thousand parameters, so the whole RPO loop runs on a CPU in seconds. Nothing is downloaded:
tokenizers are trained in memory on a handful of sentences.

Command line::

    python -m arrpo.rl.tiny sd3 /tmp/tiny-sd3      # also: flux, flux-kontext
"""

from __future__ import annotations

import argparse
from pathlib import Path

_CORPUS = [
    "a red apple on a wooden table",
    "a photo of a cat sitting on a blue sofa",
    "make the sky purple and add a moon",
    "a watercolor painting of mountains at sunrise",
    "replace the dog with a small green robot",
    "an astronaut riding a horse in the desert",
]
TINY_FAMILIES = ("sd3", "flux", "flux-kontext")


def tiny_tokenizer(max_length: int = 32, vocab_size: int = 512):
    """A byte-level BPE tokenizer trained in memory, wrapped as a ``PreTrainedTokenizerFast``.

    The vocabulary leaves room for the merges of the whole corpus (the byte alphabet alone takes
    260 entries), so its sentences and prompts like them take a few tokens each and fit the tiny
    preset's ``max_sequence_length`` of 16 without truncation.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
        model_max_length=max_length,
    )


def _clip_encoder(vocab: int, seed: int, projection: bool = True, **sizes):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = dict(
        vocab_size=vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, projection_dim=32, max_position_embeddings=32,
        eos_token_id=1, pad_token_id=0, bos_token_id=3,
    )  # fmt: skip
    cfg = CLIPTextConfig(**(config | sizes))
    return CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)


def _t5_encoder(vocab: int, d_model: int = 32, **sizes):
    from transformers import T5Config, T5EncoderModel

    config = dict(
        vocab_size=vocab, d_model=d_model, d_ff=37, d_kv=8, num_layers=1, num_heads=4,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return T5EncoderModel(T5Config(**(config | sizes)))


def _vae(**sizes):
    from diffusers import AutoencoderKL

    config = dict(
        block_out_channels=(8, 8), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=1, layers_per_block=1, sample_size=32, use_quant_conv=False,
        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    )  # fmt: skip
    return AutoencoderKL(**(config | sizes))


#: The parts of a FLUX pipeline whose sizes :func:`build_tiny_pipeline` takes overrides for.
FLUX_PARTS = ("transformer", "vae", "text_encoder", "text_encoder_2")


def build_tiny_pipeline(family: str, seed: int = 0, sizes: dict[str, dict] | None = None):
    """Build a tiny random pipeline of ``family`` (one of :data:`TINY_FAMILIES`).

    ``sizes`` (FLUX families only) overrides the configs of the parts named in :data:`FLUX_PARTS`,
    e.g. ``{"transformer": {"num_layers": 19, ...}}``: ``benchmarks/gpu_proof.py`` builds a
    FLUX.1-dev-size pipeline this way. The tokenizers stay the tiny in-memory ones (a stand-in:
    ids below 300, lengths padded as the real ones). Modules are created where torch's default
    device and dtype say (CPU, fp32 unless the caller sets them).
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    if family not in TINY_FAMILIES:
        raise ValueError(f"no tiny pipeline for {family!r}; choose one of {TINY_FAMILIES}")
    sizes = dict(sizes or {})
    unknown = set(sizes) - set(FLUX_PARTS)
    if unknown or (sizes and family == "sd3"):
        raise ValueError(f"size overrides are for the FLUX parts {FLUX_PARTS}, not {sorted(unknown) or family}")
    clip_length = sizes.get("text_encoder", {}).get("max_position_embeddings", 32)
    tokenizer = tiny_tokenizer(max_length=clip_length)
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    if family == "sd3":
        from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

        transformer = SD3Transformer2DModel(
            sample_size=16, patch_size=1, in_channels=4, num_layers=2, attention_head_dim=8,
            num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
            pooled_projection_dim=64, out_channels=4,
        )  # fmt: skip
        return StableDiffusion3Pipeline(
            transformer=transformer, scheduler=scheduler, vae=_vae(),
            text_encoder=_clip_encoder(vocab, seed + 1), tokenizer=tokenizer,
            text_encoder_2=_clip_encoder(vocab, seed + 2), tokenizer_2=tiny_tokenizer(),
            text_encoder_3=_t5_encoder(vocab), tokenizer_3=tiny_tokenizer(),
        )  # fmt: skip
    from diffusers import FluxKontextPipeline, FluxPipeline, FluxTransformer2DModel

    transformer_config = dict(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=True,
    )  # fmt: skip
    transformer = FluxTransformer2DModel(**(transformer_config | sizes.get("transformer", {})))
    cls = FluxKontextPipeline if family == "flux-kontext" else FluxPipeline
    return cls(
        transformer=transformer, scheduler=scheduler, vae=_vae(**sizes.get("vae", {})),
        text_encoder=_clip_encoder(vocab, seed + 1, projection=False, **sizes.get("text_encoder", {})),
        tokenizer=tokenizer, text_encoder_2=_t5_encoder(vocab, **sizes.get("text_encoder_2", {})),
        tokenizer_2=tiny_tokenizer(),
    )  # fmt: skip


def save_tiny_pipeline(family: str, path: str | Path, seed: int = 0) -> Path:
    """Build a tiny pipeline and ``save_pretrained`` it to ``path``; returns the path."""
    path = Path(path)
    build_tiny_pipeline(family, seed).save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Save a tiny random diffusers pipeline (offline).")
    parser.add_argument("family", choices=TINY_FAMILIES)
    parser.add_argument("path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(save_tiny_pipeline(args.family, args.path, args.seed))


if __name__ == "__main__":
    main()
