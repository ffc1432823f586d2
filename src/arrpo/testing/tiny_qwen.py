"""Tiny random-weight Qwen models, built offline from the real classes, for tests and demos.

- :func:`build_tiny_qwen3_vl`: a ``Qwen3VLForConditionalGeneration`` with the real
  ``Qwen3VLProcessor`` (``Qwen2VLImageProcessor`` + ``Qwen3VLVideoProcessor``), the judge's
  default model family; :func:`random_qwen3_vl` and :func:`qwen3_vl_processor` build the two in
  memory, at any size.
- :func:`build_tiny_qwen2_5_vl`: a ``Qwen2_5_VLForConditionalGeneration`` with
  ``Qwen2_5_VLProcessor``, the text encoder family of Qwen-Image.
- :func:`build_tiny_qwen_image`: a ``QwenImagePipeline`` / ``QwenImageEditPipeline`` whose text
  encoder is a tiny Qwen2.5-VL (with ``Qwen2Tokenizer`` and, for edits, ``Qwen2VLProcessor``).

The tokenizer is a byte-level BPE trained in memory and wrapped in the real ``Qwen2Tokenizer``
class (Qwen's pre-tokenizer, its special tokens ``<|im_start|>``, ``<|vision_start|>``,
``<|image_pad|>`` …); the chat template has the Qwen3-VL shape (ChatML turns, one
``<|vision_start|><|image_pad|><|vision_end|>`` run per image). Nothing is downloaded; answers
are random text. The Qwen processors of ``transformers`` 5 need ``torchvision`` (their video
processor is torchvision-only, and the processor cannot be built without it).

Command line::

    python -m arrpo.testing.tiny_qwen qwen3-vl /tmp/tiny-qwen3-vl   # also: qwen2.5-vl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

#: The special tokens of the Qwen2.5-VL / Qwen3-VL tokenizers that the processors and templates use.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip
_CORPUS = [
    "Image 1 follows the rubric better than Image 2.",
    '{"rank": [1, 2], "reason": "sharper, on prompt, correct text and anatomy"}',
    "a red bicycle leaning on a wall; make the sky purple and add a moon",
]


def qwen_chat_template() -> str:
    """The Qwen3-VL-shaped chat template of the tiny models."""
    return resources.files("arrpo.testing").joinpath("qwen_chat_template.jinja").read_text()


def _arrpo_prompt_texts() -> list[str]:
    """The judge's and rubric writer's prompt templates, so the tiny tokenizer knows their words."""
    folder = resources.files("arrpo.prompts")
    return [f.read_text() for f in folder.iterdir() if f.name.endswith(".j2")]


def tiny_qwen_tokenizer(corpus: Iterable[str] = (), vocab_size: int = 2048):
    """A ``Qwen2Tokenizer`` over a byte-level BPE trained in memory on ``corpus`` (plus arrpo's
    prompts), with Qwen's pre-tokenizer, special tokens and the Qwen3-VL-shaped chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer

    texts = [*_CORPUS, *_arrpo_prompt_texts(), *corpus]
    shape = Qwen2Tokenizer()._tokenizer  # Qwen's normalizer and pre-tokenizer, empty vocabulary
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = shape.normalizer
    bpe.pre_tokenizer = shape.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )  # fmt: skip
    bpe.train_from_iterator(texts * 3, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, model_max_length=32768,
    )  # fmt: skip
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tokenizer.chat_template = qwen_chat_template()
    return tokenizer


def _token_ids(tokenizer: Any) -> dict[str, int]:
    names = {"image": "<|image_pad|>", "video": "<|video_pad|>", "vision_start": "<|vision_start|>",
             "vision_end": "<|vision_end|>"}  # fmt: skip
    return {f"{k}_token_id": tokenizer.convert_tokens_to_ids(v) for k, v in names.items()}


def _text_config(tokenizer: Any, hidden: int, heads: int, kv_heads: int, mrope: list[int], **extra) -> dict:
    head_dim = hidden // heads
    if sum(mrope) * 2 != head_dim:
        raise ValueError(f"mrope sections {mrope} must add up to half the head size {head_dim}")
    return {
        "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "max_position_embeddings": 4096, "pad_token_id": tokenizer.pad_token_id,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope, **extra},
    }  # fmt: skip


def _image_processor(patch: int, min_tokens: int, max_tokens: int, mean: list[float], std: list[float]):
    """The torchvision-backed Qwen2-VL image processor (what the hub repos' ``…ImageProcessorFast``
    entries load in transformers 5), with a small pixel budget in merged 2×2 patch tokens."""
    from transformers import Qwen2VLImageProcessor

    unit = (patch * 2) ** 2
    return Qwen2VLImageProcessor(
        patch_size=patch, temporal_patch_size=2, merge_size=2, image_mean=mean, image_std=std,
        size={"shortest_edge": min_tokens * unit, "longest_edge": max_tokens * unit},
    )  # fmt: skip


def _override(base: dict, sizes: dict | None) -> dict:
    """``base`` with the keys of ``sizes`` replaced (a nested dict such as ``rope_parameters`` is
    replaced whole, so an override states everything it changes)."""
    return {**base, **(sizes or {})}


def random_qwen3_vl(tokenizer: Any, *, seed: int = 0, text: dict | None = None, vision: dict | None = None):
    """A ``Qwen3VLForConditionalGeneration`` with random weights over ``tokenizer``'s special tokens.

    The tiny config by default; ``text`` and ``vision`` override keys of its ``text_config`` and
    ``vision_config`` (``benchmarks/gpu_proof.py`` passes Qwen3-VL-8B's, under a CUDA device and
    bf16 as torch's defaults). Generation stops at ``<|im_end|>`` or the pad token.
    """
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    hidden = 32
    text_config = _text_config(tokenizer, hidden, heads=4, kv_heads=2, mrope=[2, 1, 1], mrope_interleaved=True)
    vision_config = {
        "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
        "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": hidden,
        "num_position_embeddings": 64, "deepstack_visual_indexes": [0, 1],
    }  # fmt: skip
    config = Qwen3VLConfig(
        text_config=_override(text_config, text), vision_config=_override(vision_config, vision),
        **_token_ids(tokenizer),
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def qwen3_vl_processor(tokenizer: Any, *, min_image_tokens: int = 1, max_image_tokens: int = 64):
    """A ``Qwen3VLProcessor`` (16-pixel patches merged 2×2, as the real model) over ``tokenizer``,
    with a pixel budget of ``min_image_tokens``–``max_image_tokens`` merged tokens per image
    (Qwen3-VL's own: 64–16384)."""
    from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

    half = [0.5, 0.5, 0.5]
    return Qwen3VLProcessor(
        image_processor=_image_processor(16, min_image_tokens, max_image_tokens, half, half),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2),
        chat_template=qwen_chat_template(),
    )


def build_tiny_qwen3_vl(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny Qwen3-VL (model, ``Qwen3VLProcessor``, tokenizer, chat template) to ``path``.

    Images get 16-pixel patches merged 2×2 (as in the real model) and a budget of 1–64 image
    tokens, so a 64×64 image becomes a (1, 4, 4) grid and 4 ``<|image_pad|>`` tokens.
    """
    path = Path(path)
    tokenizer = tiny_qwen_tokenizer()
    model = random_qwen3_vl(tokenizer, seed=seed)
    model.save_pretrained(path)
    qwen3_vl_processor(tokenizer).save_pretrained(path)
    return path


def _qwen2_5_vl(tokenizer: Any, hidden: int, seed: int, text: dict | None = None, vision: dict | None = None):
    """A random ``Qwen2_5_VLForConditionalGeneration``: tiny (8-wide heads) unless ``text`` and
    ``vision`` override its configs."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text_config = _text_config(tokenizer, hidden, heads=hidden // 8, kv_heads=1, mrope=[2, 1, 1])
    vision_config = {
        "depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "patch_size": 14,
        "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [1], "out_hidden_size": hidden,
    }  # fmt: skip
    config = Qwen2_5_VLConfig(
        text_config=_override(text_config, text), vision_config=_override(vision_config, vision),
        **_token_ids(tokenizer),
    )  # fmt: skip
    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(config)


_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _qwen2_vl_family_processor(cls_name: str, tokenizer: Any, min_tokens: int = 4, max_tokens: int = 64):
    """``Qwen2_5_VLProcessor`` or ``Qwen2VLProcessor`` with 14-pixel patches (Qwen2.5-VL's vision
    tower) and a budget of ``min_tokens``–``max_tokens`` image tokens (tiny: 4–64)."""
    import transformers
    from transformers import Qwen2VLVideoProcessor

    return getattr(transformers, cls_name)(
        image_processor=_image_processor(14, min_tokens, max_tokens, _CLIP_MEAN, _CLIP_STD),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(patch_size=14, temporal_patch_size=2, merge_size=2),
        chat_template=qwen_chat_template(),
    )


def build_tiny_qwen2_5_vl(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny Qwen2.5-VL (model, ``Qwen2_5_VLProcessor``, tokenizer, chat template) to ``path``."""
    path = Path(path)
    tokenizer = tiny_qwen_tokenizer()
    model = _qwen2_5_vl(tokenizer, 32, seed)
    model.save_pretrained(path)
    _qwen2_vl_family_processor("Qwen2_5_VLProcessor", tokenizer).save_pretrained(path)
    return path


def _template_head(template: str) -> str:
    """The part of a Qwen-Image prompt template that the pipeline drops from the embeddings: the
    system turn and the user turn's header."""
    marker = "<|im_start|>user\n"
    return template[: template.index(marker) + len(marker)]


#: The parts of a Qwen-Image pipeline whose sizes :func:`build_tiny_qwen_image` takes overrides for:
#: the transformer and VAE configs, the text encoder's ``text_config`` and ``vision_config``, and
#: ``image_tokens``, the (min, max) pixel budget of the edit processor in merged tokens.
QWEN_IMAGE_PARTS = ("transformer", "vae", "text", "vision", "image_tokens")


def build_tiny_qwen_image(*, edit: bool = False, seed: int = 0, sizes: dict[str, Any] | None = None):
    """A ``QwenImagePipeline`` (or ``QwenImageEditPipeline``) with a tiny random transformer and
    VAE and a tiny Qwen2.5-VL text encoder, created where torch's default device and dtype say.

    The pipeline drops a fixed number of leading tokens (its system prompt) from the encoder's
    hidden states; the tokenizer is trained on that prompt so it splits it into exactly that many
    tokens, as Qwen's own tokenizer does (checked here). ``sizes`` overrides the configs of the
    parts in :data:`QWEN_IMAGE_PARTS` (``benchmarks/gpu_proof.py`` builds Qwen-Image-Edit's real
    sizes this way; the tokenizer stays the small in-memory one).
    """
    sizes = dict(sizes or {})
    unknown = set(sizes) - set(QWEN_IMAGE_PARTS)
    if unknown:
        raise ValueError(f"unknown Qwen-Image parts {sorted(unknown)}; use {QWEN_IMAGE_PARTS}")
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )

    pipeline_cls = QwenImageEditPipeline if edit else QwenImagePipeline
    blank = pipeline_cls(**dict.fromkeys(("scheduler", "vae", "text_encoder", "tokenizer", "transformer"))
                         | ({"processor": None} if edit else {}))
    template, drop = blank.prompt_template_encode, blank.prompt_template_encode_start_idx
    tokenizer = tiny_qwen_tokenizer([template.replace("{}", "")] * 8)
    head = len(tokenizer(_template_head(template))["input_ids"])
    if head != drop:
        raise RuntimeError(f"the tiny tokenizer splits the {pipeline_cls.__name__} system prompt into {head} "
                           f"tokens; the pipeline drops {drop}")
    hidden = 16
    text_encoder = _qwen2_5_vl(tokenizer, hidden, seed + 1, sizes.get("text"), sizes.get("vision"))
    import torch

    torch.manual_seed(seed)
    transformer_config = dict(
        patch_size=2, in_channels=16, out_channels=4, num_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=hidden, axes_dims_rope=(8, 4, 4),
    )  # fmt: skip
    transformer = QwenImageTransformer2DModel(**_override(transformer_config, sizes.get("transformer")))
    vae_config = dict(
        base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[False],
        latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
    )  # fmt: skip
    vae = AutoencoderKLQwenImage(**_override(vae_config, sizes.get("vae")))
    parts: dict[str, Any] = dict(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder, tokenizer=tokenizer,
    )  # fmt: skip
    if edit:
        parts["processor"] = _qwen2_vl_family_processor("Qwen2VLProcessor", tokenizer, *sizes.get("image_tokens", (4, 64)))
    return pipeline_cls(**parts)


def save_tiny_qwen_image(path: str | Path, *, edit: bool = False, seed: int = 0) -> Path:
    """Build :func:`build_tiny_qwen_image` and ``save_pretrained`` it to ``path``."""
    path = Path(path)
    build_tiny_qwen_image(edit=edit, seed=seed).save_pretrained(path)
    return path


_BUILDERS = {"qwen3-vl": build_tiny_qwen3_vl, "qwen2.5-vl": build_tiny_qwen2_5_vl,
             "qwen-image": lambda p, seed: save_tiny_qwen_image(p, seed=seed),
             "qwen-image-edit": lambda p, seed: save_tiny_qwen_image(p, edit=True, seed=seed)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Save a tiny random Qwen model or pipeline (offline).")
    parser.add_argument("kind", choices=sorted(_BUILDERS))
    parser.add_argument("path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(_BUILDERS[args.kind](args.path, seed=args.seed))


if __name__ == "__main__":
    main()
