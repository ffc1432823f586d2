"""Stable Diffusion 3 / 3.5 (MM-DiT) adapter: unpacked ``(B, C, h, w)`` latents, timestep = σ·1000."""

from __future__ import annotations

import torch
from PIL import Image

from arrpo.rl.policies.base import Conditioning, FlowPolicy


class SD3Policy(FlowPolicy):
    """Adapter over ``StableDiffusion3Pipeline`` (no CFG during rollouts)."""

    family = "sd3"

    def encode(self, prompts: list[str], sources: list[Image.Image] | None = None) -> Conditioning:
        with torch.no_grad():
            embeds, _, pooled, _ = self.pipe.encode_prompt(
                prompt=prompts, prompt_2=None, prompt_3=None, device=self.device,
                do_classifier_free_guidance=False, max_sequence_length=self.max_sequence_length,
            )  # fmt: skip
        return Conditioning({"embeds": embeds.detach(), "pooled": pooled.detach()})

    def initial_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        c = self.transformer.config.in_channels
        h, w = self.height // self.vae_scale_factor, self.width // self.vae_scale_factor
        return torch.randn((n, c, h, w), generator=generator, device=generator.device).to(self.device)

    def velocity(self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self.model(
            hidden_states=latents.to(self.dtype),
            timestep=(sigma * 1000).to(self.dtype),
            encoder_hidden_states=cond["embeds"].to(self.dtype),
            pooled_projections=cond["pooled"].to(self.dtype),
            return_dict=False,
        )[0]

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        return self._decode_with_vae(latents)
