"""DanceGRPO's ``train_grpo_flux.py`` decode loop and advantages, re-written from its source.

``sample_reference_model`` samples one image at a time: ``batch_caption = [caption[i]]``, the
VAE's raw output ``image`` (a (1, 3, H, W) bf16 tensor in [−1, 1]) and ``decoded_image`` (its
post-processed list of one PIL image); each score a 1-element tensor appended and concatenated.
With ``use_group`` the advantage is ``(r − mean)/(std + 1e-8)`` per contiguous chunk of
``num_generations`` (torch's unbiased std). Facts in /work/notes/hosts.md.
"""

from __future__ import annotations

import torch
from PIL import Image


def repeat_captions(captions: list[str], num_generations: int) -> list[str]:
    """``train_one_step`` with ``use_group``: each caption repeated contiguously."""
    return [c for c in captions for _ in range(num_generations)]


def vae_output(gray: int, size: int = 8) -> torch.Tensor:
    """What ``vae.decode(latents)[0]`` gives for a flat gray image: (1, 3, H, W) bf16 in [−1, 1]."""
    return torch.full((1, 3, size, size), gray / 127.5 - 1.0, dtype=torch.bfloat16)


def postprocess(image: torch.Tensor) -> list[Image.Image]:
    """``VaeImageProcessor.postprocess(image)`` (output type PIL): [−1, 1] → [0, 1] → uint8 PIL."""
    unit = (image.float() / 2 + 0.5).clamp(0, 1)
    arrays = (unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in arrays]


def sample_reference_model(score, caption: list[str], grays: list[int], sources=None):
    """The per-image loop; ``score(image=..., decoded_image=..., caption=..., batch_caption=...,
    source=...)`` stands where the inline reward is computed and returns a 1-element tensor."""
    all_rewards = []
    for index in range(len(caption)):
        batch_caption = [caption[index]]
        image = vae_output(grays[index])
        decoded_image = postprocess(image)
        source = sources[index] if sources is not None else None
        all_rewards.append(score(image=image, decoded_image=decoded_image, caption=caption,
                                 batch_caption=batch_caption, source=source))
    return torch.cat(all_rewards, dim=0)


def group_advantages(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    advantages = torch.zeros_like(rewards)
    for start in range(0, len(rewards), num_generations):
        chunk = rewards[start:start + num_generations]
        advantages[start:start + num_generations] = (chunk - chunk.mean()) / (chunk.std() + 1e-8)
    return advantages
