"""The trained adapter loads with diffusers' own ``pipe.load_lora_weights`` for every family."""

import pytest
import torch
from safetensors import safe_open

from arrpo.rl.lora import DIFFUSERS_LORA_FILE, add_lora, save_diffusers_lora
from arrpo.rl.policies import DEFAULT_LORA_TARGETS

FAMILIES = ["sd3", "flux", "flux-kontext", "qwen-image", "qwen-image-edit"]


def _velocity(policy, source_image):
    sources = [source_image()] if policy.needs_source else None
    cond = policy.encode(["a red apple"], sources)
    x = policy.initial_noise(1, torch.Generator().manual_seed(3))
    with torch.no_grad():
        return policy.velocity(x, torch.full((1,), 0.6), cond)


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_adapter_loads_into_a_fresh_pipeline(tmp_path, make_policy, source_image, family):
    trained = make_policy(family)
    add_lora(trained.transformer, rank=4, alpha=8, target_modules=DEFAULT_LORA_TARGETS[family])
    for name, p in trained.transformer.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.2)  # as after training: the adapter changes the output
    path = save_diffusers_lora(trained.pipe, tmp_path / "final")
    assert path.name == DIFFUSERS_LORA_FILE
    with safe_open(str(path), "pt") as f:
        assert all(k.startswith("transformer.") for k in f.keys())  # noqa: SIM118 (safe_open is not iterable)
        assert "lora_adapter_metadata" in (f.metadata() or {})

    fresh = make_policy(family)
    base = _velocity(fresh, source_image)
    fresh.pipe.load_lora_weights(str(tmp_path / "final"))
    assert fresh.pipe.get_active_adapters()
    loaded = _velocity(fresh, source_image)
    assert not torch.allclose(loaded, base, atol=1e-4)
    assert torch.allclose(loaded, _velocity(trained, source_image), atol=1e-5)
