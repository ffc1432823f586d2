"""Policy adapters, one per model family, and :func:`load_policy` to build one from a pipeline path."""

from __future__ import annotations

from arrpo.rl.policies.base import Conditioning, FlowPolicy
from arrpo.rl.policies.flux import FluxKontextPolicy, FluxPolicy
from arrpo.rl.policies.qwen import QwenImageEditPolicy, QwenImagePolicy
from arrpo.rl.policies.sd3 import SD3Policy

#: family name → (adapter class, diffusers pipeline class name)
FAMILIES: dict[str, tuple[type[FlowPolicy], str]] = {
    "sd3": (SD3Policy, "StableDiffusion3Pipeline"),
    "flux": (FluxPolicy, "FluxPipeline"),
    "flux-kontext": (FluxKontextPolicy, "FluxKontextPipeline"),
    "qwen-image": (QwenImagePolicy, "QwenImagePipeline"),
    "qwen-image-edit": (QwenImageEditPolicy, "QwenImageEditPipeline"),
}

#: LoRA target modules used by the presets of each family (attention projections).
DEFAULT_LORA_TARGETS: dict[str, list[str]] = {
    "sd3": ["to_q", "to_k", "to_v", "to_out.0"],
    "flux": ["to_q", "to_k", "to_v", "to_out.0"],
    "flux-kontext": ["to_q", "to_k", "to_v", "to_out.0"],
    "qwen-image": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
    "qwen-image-edit": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
}


def load_policy(family: str, pretrained: str, *, dtype: str = "float32", device: str = "cpu", revision: str | None = None, **kwargs) -> FlowPolicy:
    """Load the diffusers pipeline ``pretrained`` (local dir or hub id) and wrap it in the family's adapter."""
    import diffusers
    import torch

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {sorted(FAMILIES)}")
    adapter, pipeline_name = FAMILIES[family]
    pipeline_cls = getattr(diffusers, pipeline_name)
    pipe = pipeline_cls.from_pretrained(pretrained, dtype=getattr(torch, dtype), revision=revision)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    return adapter(pipe, **kwargs)


__all__ = [
    "DEFAULT_LORA_TARGETS",
    "FAMILIES",
    "Conditioning",
    "FlowPolicy",
    "FluxKontextPolicy",
    "FluxPolicy",
    "QwenImageEditPolicy",
    "QwenImagePolicy",
    "SD3Policy",
    "load_policy",
]
