"""FLUX.1 (T2I) and FLUX.1-Kontext (editing) adapters: 2×2-packed latent tokens, timestep = σ,
embedded guidance; Kontext appends the source image's packed latents to the token sequence."""

from __future__ import annotations

import torch
from PIL import Image

from arrpo.rl.policies.base import Conditioning, PackedLatentPolicy

#: Embedded guidance when the config leaves it unset (FLUX.1-dev's usual value, also the authors').
DEFAULT_FLUX_GUIDANCE = 3.5


class FluxPolicy(PackedLatentPolicy):
    """Adapter over ``FluxPipeline`` (FLUX.1-dev/schnell); no true CFG during rollouts."""

    family = "flux"

    def _ids(self, h: int, w: int, first: float = 0.0) -> torch.Tensor:
        ids = self.pipe._prepare_latent_image_ids(1, h // 2, w // 2, self.device, self.dtype)
        ids[..., 0] = first
        return ids

    def encode(self, prompts: list[str], sources: list[Image.Image] | None = None) -> Conditioning:
        with torch.no_grad():
            embeds, pooled, _ = self.pipe.encode_prompt(
                prompt=prompts, prompt_2=None, device=self.device,
                max_sequence_length=self.max_sequence_length,
            )  # fmt: skip
        return Conditioning({"embeds": embeds.detach(), "pooled": pooled.detach()})

    def _forward(self, tokens, img_ids, sigma, cond) -> torch.Tensor:
        guidance = None
        if self.transformer.config.guidance_embeds:
            value = DEFAULT_FLUX_GUIDANCE if self.guidance is None else self.guidance  # 0 is a valid guidance
            guidance = torch.full((tokens.shape[0],), value, device=self.device)
        txt_ids = torch.zeros(cond["embeds"].shape[1], 3, device=self.device, dtype=self.dtype)
        return self.model(
            hidden_states=tokens.to(self.dtype),
            timestep=sigma.to(self.dtype),
            guidance=guidance,
            pooled_projections=cond["pooled"].to(self.dtype),
            encoder_hidden_states=cond["embeds"].to(self.dtype),
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]

    def velocity(self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self._forward(latents, self._ids(*self._latent_hw), sigma, cond)

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        unpacked = self.pipe._unpack_latents(latents, self.height, self.width, self.vae_scale_factor)
        return self._decode_with_vae(unpacked)


class FluxKontextPolicy(FluxPolicy):
    """Adapter over ``FluxKontextPipeline``: instruction editing conditioned on a source image."""

    family = "flux-kontext"
    needs_source = True

    def encode(self, prompts: list[str], sources: list[Image.Image] | None = None) -> Conditioning:
        sources = self.require_sources(prompts, sources)
        cond = super().encode(prompts)
        image = self.pipe.image_processor.preprocess(sources, self.height, self.width)
        c = self.transformer.config.in_channels // 4
        with torch.no_grad():
            _, image_latents, _, _ = self.pipe.prepare_latents(
                image, len(prompts), c, self.height, self.width, self.dtype, self.device, None
            )
        cond.tensors["image_latents"] = image_latents.detach()
        return cond

    def velocity(self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        h, w = self._latent_hw
        tokens = torch.cat([latents.to(self.dtype), cond["image_latents"].to(self.dtype)], dim=1)
        ids = torch.cat([self._ids(h, w), self._ids(h, w, first=1.0)], dim=0)
        return self._forward(tokens, ids, sigma, cond)[:, : latents.shape[1]]
