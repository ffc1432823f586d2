"""What the RPO loop needs from a model family, over a diffusers pipeline.

An adapter encodes prompts (and source images for editing) once per rollout, draws initial noise
in the family's latent layout, predicts the velocity for a batch of latents at a noise level, and
decodes final latents to images. Everything else — the SDE, log-probs, the loss — is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from PIL import Image


@dataclass
class Conditioning:
    """Per-sample conditioning tensors (batch-first), detached from the text/image encoders."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def select(self, index: torch.Tensor | list[int] | slice) -> Conditioning:
        """The rows ``index`` of every tensor."""
        return Conditioning({k: v[index] for k, v in self.tensors.items()})

    def repeat(self, n: int) -> Conditioning:
        """Each row repeated ``n`` times in place (row 0 n times, then row 1, ...)."""
        return Conditioning({k: v.repeat_interleave(n, dim=0) for k, v in self.tensors.items()})

    def to(self, device: torch.device | str) -> Conditioning:
        return Conditioning({k: v.to(device) for k, v in self.tensors.items()})

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        """Concatenate along the batch dimension."""
        keys = parts[0].tensors.keys()
        return Conditioning({k: torch.cat([p.tensors[k] for p in parts]) for k in keys})


class FlowPolicy(ABC):
    """Adapter of one flow-matching model family; ``model`` is the (possibly wrapped) transformer.

    Args:
        pipe: a loaded diffusers pipeline of the family.
        height, width: image size in pixels.
        max_sequence_length: text length for the text encoders.
        guidance: embedded guidance (FLUX-dev) if the transformer takes it.
    """

    family: str = ""
    #: True for editing families: ``encode`` needs one source image per prompt.
    needs_source: bool = False

    def __init__(
        self,
        pipe,
        *,
        height: int = 512,
        width: int = 512,
        max_sequence_length: int = 512,
        guidance: float | None = None,
    ) -> None:
        self.pipe = pipe
        self.transformer = pipe.transformer
        self.model = pipe.transformer  # replaced by the DDP/FSDP-wrapped module when distributed
        self.height = height
        self.width = width
        self.max_sequence_length = max_sequence_length
        self.guidance = guidance
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.requires_grad_(False)
                module.eval()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    @property
    def vae_scale_factor(self) -> int:
        return self.pipe.vae_scale_factor

    @abstractmethod
    def encode(self, prompts: list[str], sources: list[Image.Image] | None = None) -> Conditioning:
        """Encode a batch of prompts (and source images) into detached conditioning."""

    @abstractmethod
    def initial_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` standard-normal latents in this family's layout (float32)."""

    @abstractmethod
    def velocity(self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Model velocity for ``latents`` at noise level ``sigma`` (shape ``(B,)``)."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """Decode final latents to PIL images."""

    def _decode_with_vae(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.pipe.vae
        scaled = latents.to(vae.dtype) / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        with torch.no_grad():
            image = vae.decode(scaled, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(image.float(), output_type="pil")

    def require_sources(self, prompts: list[str], sources: list[Image.Image] | None) -> list[Image.Image]:
        """The source images of an editing family: exactly one per prompt, else a clear error."""
        if not sources or len(sources) != len(prompts):
            raise ValueError(f"{self.family} needs one source image per prompt")
        return sources

    @contextmanager
    def unwrapped(self) -> Iterator[None]:
        """Inside this block forwards bypass the DDP/FSDP wrapper (no collectives): for work one
        process does alone, such as evaluation on the main process."""
        wrapped, self.model = self.model, self.transformer
        try:
            yield
        finally:
            self.model = wrapped

    @contextmanager
    def reference(self) -> Iterator[None]:
        """Inside this block the model is the reference policy (LoRA adapters disabled)."""
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self.transformer.enable_adapters()


class PackedLatentPolicy(FlowPolicy):
    """Base of the families whose transformer takes 2×2-packed latent tokens (FLUX, Qwen-Image)."""

    #: Extra axes between batch and channels of the VAE latents (Qwen's 3-D VAE has a frame axis).
    latent_frame_axes: tuple[int, ...] = ()

    @property
    def _latent_hw(self) -> tuple[int, int]:
        f = self.vae_scale_factor * 2
        return 2 * (self.height // f), 2 * (self.width // f)

    def initial_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        c = self.transformer.config.in_channels // 4
        h, w = self._latent_hw
        noise = torch.randn((n, *self.latent_frame_axes, c, h, w), generator=generator, device=generator.device)
        return self.pipe._pack_latents(noise, n, c, h, w).to(self.device)
