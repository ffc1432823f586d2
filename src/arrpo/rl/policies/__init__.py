"""Policy adapters, one per model family, and :func:`load_policy` to build one from a pipeline path."""

from __future__ import annotations

import importlib.util

from arrpo.errors import ArrpoError
from arrpo.rl.policies.base import Conditioning, FlowPolicy
from arrpo.rl.policies.flux import FluxKontextPolicy, FluxPolicy
from arrpo.rl.policies.qwen import QwenImageEditPolicy, QwenImagePolicy
from arrpo.rl.policies.sd3 import SD3Policy

#: What the policies need from diffusers: ``from_pretrained(dtype=...)`` (0.40; older releases
#: ignore it and load fp32), FluxKontextPipeline (0.34) and the Qwen-Image(-Edit) pipelines (0.35).
DIFFUSERS_REQUIREMENT = "arrpo needs diffusers>=0.40: pip install -U 'diffusers>=0.40'"

#: Modules a family's pipeline cannot be loaded without, beyond the ``train`` extra's core, and why.
REQUIRED_MODULES: dict[str, dict[str, str]] = {
    "qwen-image-edit": {
        "torchvision": "QwenImageEditPipeline's Qwen2VLProcessor cannot be built without it (its video "
        "processor is torchvision-only under transformers 5)",
    },
}


class MissingDependencyError(ArrpoError, ImportError, kind="config"):
    """A module the chosen model family needs is not installed (said before any weights load)."""


def check_family_dependencies(family: str) -> None:
    """Raise :class:`MissingDependencyError`, saying what to install, when ``family`` needs a module
    that is not installed (looked up without importing it)."""
    for module, why in REQUIRED_MODULES.get(family, {}).items():
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"model family {family!r} needs {module}, which is not installed: {why}. Install it: "
                f"pip install 'arrpo[train]', or pip install {module} (the build made for your torch: "
                "torch and torchvision must be a matching pair)"
            )


#: family name → (adapter class, diffusers pipeline class name)
FAMILIES: dict[str, tuple[type[FlowPolicy], str]] = {
    "sd3": (SD3Policy, "StableDiffusion3Pipeline"),
    "flux": (FluxPolicy, "FluxPipeline"),
    "flux-kontext": (FluxKontextPolicy, "FluxKontextPipeline"),
    "qwen-image": (QwenImagePolicy, "QwenImagePipeline"),
    "qwen-image-edit": (QwenImageEditPolicy, "QwenImageEditPipeline"),
}

#: The authors' LoRA targets: the attention projections of the image stream (for FLUX and
#: Qwen-Image these layers also see the joint text+image sequence).
ATTENTION_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]

#: A wider option for the dual-stream MM-DiTs (Qwen-Image, FLUX, SD3): also the text-stream
#: projections of the joint attention. Not what the paper trained; set ``lora.target_modules`` to it.
JOINT_ATTENTION_TARGETS = [*ATTENTION_TARGETS, "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]

#: LoRA target modules when ``lora.target_modules`` is unset: the authors' choice for every family.
DEFAULT_LORA_TARGETS: dict[str, list[str]] = {
    "sd3": list(ATTENTION_TARGETS),
    "flux": list(ATTENTION_TARGETS),
    "flux-kontext": list(ATTENTION_TARGETS),
    "qwen-image": list(ATTENTION_TARGETS),
    "qwen-image-edit": list(ATTENTION_TARGETS),
}


def load_policy(family: str, pretrained: str, *, dtype: str = "float32", device: str = "cpu", revision: str | None = None, **kwargs) -> FlowPolicy:
    """Load the diffusers pipeline ``pretrained`` (local dir or hub id) and wrap it in the family's adapter.

    Raises:
        MissingDependencyError: the family needs a module that is not installed (torchvision for
            ``qwen-image-edit``), before anything is loaded.
    """
    import diffusers
    import torch

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {sorted(FAMILIES)}")
    check_family_dependencies(family)
    adapter, pipeline_name = FAMILIES[family]
    pipeline_cls = getattr(diffusers, pipeline_name, None)
    if pipeline_cls is None:
        raise ImportError(f"diffusers {diffusers.__version__} has no {pipeline_name}; {DIFFUSERS_REQUIREMENT}")
    wanted = getattr(torch, dtype)
    pipe = pipeline_cls.from_pretrained(pretrained, dtype=wanted, revision=revision)
    if pipe.transformer.dtype != wanted:  # an older diffusers ignores dtype= with only a warning
        raise RuntimeError(
            f"{pretrained} loaded in {pipe.transformer.dtype}, not the configured {dtype} "
            f"(diffusers {diffusers.__version__}); {DIFFUSERS_REQUIREMENT}"
        )
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    return adapter(pipe, **kwargs)


__all__ = [
    "ATTENTION_TARGETS",
    "DEFAULT_LORA_TARGETS",
    "FAMILIES",
    "JOINT_ATTENTION_TARGETS",
    "REQUIRED_MODULES",
    "Conditioning",
    "FlowPolicy",
    "FluxKontextPolicy",
    "FluxPolicy",
    "MissingDependencyError",
    "QwenImageEditPolicy",
    "QwenImagePolicy",
    "SD3Policy",
    "check_family_dependencies",
    "load_policy",
]
