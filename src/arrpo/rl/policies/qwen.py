"""Qwen-Image (T2I) and Qwen-Image-Edit adapters: 2×2-packed tokens of a 3-D (video-style) VAE,
timestep = σ, text conditioning with an attention mask; Edit appends the source image tokens.

Offline status: the transformer, packing, VAE decode and the edit token layout are exercised in
tests with tiny random modules, and so is prompt encoding: the pipeline's own ``encode_prompt`` (a
Qwen2.5-VL text encoder with its chat template and, for Edit, ``Qwen2VLProcessor`` and the vision
tower) runs through a tiny random Qwen2.5-VL saved as a pipeline folder
(``arrpo.testing.tiny_qwen``, ``tests/rl/test_qwen_text_encoder.py``, one full RPO iteration per
family). Only the real weights can show the real sizes, memory, speed and training gains.
Qwen-Image-Edit needs torchvision (its processor cannot be built without it under transformers 5;
:func:`arrpo.rl.policies.load_policy` says so before loading anything).
"""

from __future__ import annotations

import torch
from PIL import Image

from arrpo.rl.policies.base import Conditioning, PackedLatentPolicy


class QwenImagePolicy(PackedLatentPolicy):
    """Adapter over ``QwenImagePipeline`` (no true CFG during rollouts)."""

    family = "qwen-image"
    latent_frame_axes = (1,)

    def _encode_text(self, prompts: list[str], image=None) -> Conditioning:
        kwargs = {"image": image} if image is not None else {}
        with torch.no_grad():
            embeds, mask = self.pipe.encode_prompt(
                prompt=prompts, device=self.device, max_sequence_length=self.max_sequence_length, **kwargs
            )
        if mask is None:
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return Conditioning({"embeds": embeds.detach(), "mask": mask.detach()})

    def encode(self, prompts: list[str], sources: list[Image.Image] | None = None) -> Conditioning:
        return self._encode_text(prompts)

    def _img_shapes(self, n: int) -> list:
        h, w = self._latent_hw
        return [[(1, h // 2, w // 2)]] * n

    def _forward(self, tokens, sigma, cond, img_shapes) -> torch.Tensor:
        return self.model(
            hidden_states=tokens.to(self.dtype),
            timestep=sigma.to(self.dtype),
            encoder_hidden_states=cond["embeds"].to(self.dtype),
            encoder_hidden_states_mask=cond["mask"],
            img_shapes=img_shapes,
            return_dict=False,
        )[0]

    def velocity(self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self._forward(latents, sigma, cond, self._img_shapes(latents.shape[0]))

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipe.vae
        z = self.pipe._unpack_latents(latents, self.height, self.width, self.vae_scale_factor).to(vae.dtype)
        mean = torch.tensor(vae.config.latents_mean, device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
        with torch.no_grad():
            image = vae.decode(z * std + mean, return_dict=False)[0][:, :, 0]
        return self.pipe.image_processor.postprocess(image.float(), output_type="pil")


class QwenImageEditPolicy(QwenImagePolicy):
    """Adapter over ``QwenImageEditPipeline``; the source image is resized to the output size."""

    family = "qwen-image-edit"
    needs_source = True

    def encode(self, prompts: list[str], sources: list[Image.Image] | None = None) -> Conditioning:
        sources = self.require_sources(prompts, sources)
        resized = [s.convert("RGB").resize((self.width, self.height)) for s in sources]
        cond = self._encode_text(prompts, image=resized)
        image = self.pipe.image_processor.preprocess(resized, self.height, self.width).unsqueeze(2)
        c = self.transformer.config.in_channels // 4
        with torch.no_grad():
            _, image_latents = self.pipe.prepare_latents(
                image, len(prompts), c, self.height, self.width, self.dtype, self.device, None
            )
        cond.tensors["image_latents"] = image_latents.detach()
        return cond

    def velocity(self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        h, w = self._latent_hw
        tokens = torch.cat([latents.to(self.dtype), cond["image_latents"].to(self.dtype)], dim=1)
        shapes = [[(1, h // 2, w // 2), (1, h // 2, w // 2)]] * latents.shape[0]
        return self._forward(tokens, sigma, cond, shapes)[:, : latents.shape[1]]
