"""Small JPEG thumbnails of judged images, kept in the run directory for the report."""

from __future__ import annotations

import base64
import io
import os
import threading
from pathlib import Path

from PIL import Image

from arrpo.images import ImageData

THUMB_SIZE = 192


def thumbnail_bytes(image: ImageData, size: int = THUMB_SIZE) -> bytes:
    """A JPEG at most ``size`` pixels on its longer side."""
    im = image.to_pil()
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=78, optimize=True)
    return buffer.getvalue()


def save_thumbnail(image: ImageData, folder: Path, size: int = THUMB_SIZE) -> str:
    """Write the thumbnail once (named by the image's content hash); returns its name."""
    name = f"{image.sha256[:20]}.jpg"
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")  # threads may race on one image
        tmp.write_bytes(thumbnail_bytes(image, size))
        tmp.replace(path)
    return name


def thumbnail_data_url(folder: Path, name: str | None) -> str | None:
    """The thumbnail as a ``data:`` URL for inlining, or None when it is missing."""
    if not name:
        return None
    path = folder / name
    if not path.exists():
        return None
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
