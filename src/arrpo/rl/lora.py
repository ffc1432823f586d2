"""LoRA adapters on the policy transformer (peft), their state for checkpoints, and their export
in the diffusers LoRA format (what ``pipe.load_lora_weights`` reads)."""

from __future__ import annotations

from pathlib import Path

import torch


def add_lora(transformer, *, rank: int, alpha: float, target_modules: list[str], dropout: float = 0.0) -> list[torch.nn.Parameter]:
    """Freeze ``transformer``, add a LoRA adapter and return its trainable parameters (fp32).

    LoRA weights are kept in float32 even when the base model runs in bf16, so tiny updates are
    not rounded away. Initialisation is peft's default, as in the authors' code: ``B = 0`` (the
    adapter starts as the identity) and ``A`` Kaiming-uniform with ``a = √5``, i.e. uniform in
    ±1/√fan_in (std 1/√(3·fan_in), ≈0.010 for FLUX's 3072 features). peft's ``"gaussian"`` init
    would draw ``A`` with std 1/rank (0.063 at rank 16), a several times larger first update
    under Adam at the same learning rate.
    """
    from peft import LoraConfig

    transformer.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=dropout,
    )  # fmt: skip
    transformer.add_adapter(config)
    params = [p for p in transformer.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"LoRA matched no module of the transformer for targets {target_modules}")
    for p in params:
        p.data = p.data.float()
    return params


def lora_state_dict(transformer) -> dict[str, torch.Tensor]:
    """The adapter weights (peft names), detached on CPU."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(transformer).items()}


def load_lora_state_dict(transformer, state: dict[str, torch.Tensor]) -> None:
    """Load weights saved by :func:`lora_state_dict` into the adapter (in place)."""
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(transformer, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"LoRA state has keys the model lacks: {unexpected[:5]}")


#: The file ``save_lora_weights`` writes and ``load_lora_weights`` looks for in a folder.
DIFFUSERS_LORA_FILE = "pytorch_lora_weights.safetensors"


def save_diffusers_lora(pipe, directory, transformer=None) -> Path:
    """Save the transformer's adapter with the pipeline class's own ``save_lora_weights``.

    The file is what diffusers itself writes (keys prefixed ``transformer.``, the peft config as
    ``lora_adapter_metadata``), so ``pipe.load_lora_weights(directory)`` on a fresh pipeline of the
    same family restores the trained model. ``transformer`` defaults to ``pipe.transformer`` (pass
    the unwrapped module under DDP). Returns the written file.
    """
    from peft.utils import get_peft_model_state_dict

    transformer = pipe.transformer if transformer is None else transformer
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer).items()}
    if not state:
        raise ValueError("the transformer has no LoRA adapter to save")
    metadata = transformer.peft_config["default"].to_dict()
    type(pipe).save_lora_weights(
        directory, transformer_lora_layers=state, transformer_lora_adapter_metadata=metadata,
        weight_name=DIFFUSERS_LORA_FILE,
    )  # fmt: skip
    return directory / DIFFUSERS_LORA_FILE
