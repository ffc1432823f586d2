"""Images as trainers hold them (PIL, numpy uint8 HWC, torch float CHW in [0, 1]) → PNG bytes.

numpy and torch are never imported here unless the caller already passed one of their arrays, so
this module works in an environment with neither.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from arrpo.images import ImageData


def _module(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def is_tensor(value: Any) -> bool:
    return _module(value) == "torch"


def is_ndarray(value: Any) -> bool:
    return _module(value) == "numpy"


def tensor_to_uint8_hwc(tensor: Any):
    """A torch image tensor (C,H,W) or (H,W), float in [0, 1] or uint8, as a numpy uint8 HWC array."""
    import torch

    data = tensor.detach().cpu()
    if data.dtype != torch.uint8:
        data = (data.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    if data.ndim == 3:
        data = data.permute(1, 2, 0)
    return data.numpy()


def array_to_pil(array: Any) -> Image.Image:
    """A numpy image as PIL: HWC or HW, uint8 (0–255) or float (0–1); CHW is accepted too."""
    import numpy as np

    data = np.asarray(array)
    if data.ndim == 3 and data.shape[0] in (1, 3, 4) and data.shape[-1] not in (1, 3, 4):
        data = np.transpose(data, (1, 2, 0))
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise ValueError(f"expected one image (H, W[, C]), got an array of shape {tuple(np.shape(array))}")
    if data.dtype != np.uint8:
        if np.issubdtype(data.dtype, np.floating):
            data = np.clip(data, 0.0, 1.0) * 255.0
        data = np.clip(np.rint(data), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(data))


def to_pil(image: Any) -> Image.Image:
    """Any supported in-memory image as a PIL image."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, ImageData):
        return image.to_pil()
    if is_tensor(image):
        return array_to_pil(tensor_to_uint8_hwc(image))
    if is_ndarray(image):
        return array_to_pil(image)
    raise TypeError(f"cannot use a {type(image).__name__} as an image")


def image_bytes(image: Any) -> bytes:
    """Encoded bytes to send: files and bytes as they are, everything else as PNG.

    Paths are read here, on the client; the service itself never accepts paths.
    """
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, ImageData):
        return image.data
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
        return path.read_bytes()
    pil = to_pil(image)
    if pil.mode not in ("RGB", "RGBA", "L"):
        pil = pil.convert("RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def split_images(images: Any) -> list[Any]:
    """A batch as a list of single images: a list/tuple as is; a 4-D array or tensor split on dim 0."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if (is_tensor(images) or is_ndarray(images)) and len(images.shape) == 4:
        return [images[k] for k in range(images.shape[0])]
    if is_tensor(images) or is_ndarray(images) or isinstance(images, (Image.Image, ImageData)):
        return [images]
    raise TypeError(f"expected a list of images or a batched array/tensor, not {type(images).__name__}")
