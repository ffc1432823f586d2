"""Loading, validating, normalising, hashing and encoding images — once per image.

Every image that reaches a judge goes through :func:`load_image`. The result, :class:`ImageData`,
holds the bytes that will be sent, their SHA-256 (used for caching and seeding) and a lazily built
base64 data URL that is then reused by every comparison the image takes part in.
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import warnings
from functools import cached_property
from pathlib import Path
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

from arrpo.errors import ArrpoError

#: Images larger than this many pixels are refused as possible decompression bombs.
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
#: Image files larger than this many bytes are not read.
DEFAULT_MAX_IMAGE_BYTES = 256 * 1024 * 1024
#: Formats we pass through byte for byte when no conversion is needed.
_PASSTHROUGH_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


class ImageError(ArrpoError, ValueError, kind="image"):
    """An image could not be used. The message says which image and why."""


ImageSource = Union[str, Path, bytes, bytearray, Image.Image, "ImageData"]


class ImageData:
    """A validated RGB image ready to be sent to a model.

    Attributes:
        data: the encoded bytes that are sent (JPEG/PNG/WebP).
        mime: their MIME type.
        width, height: size in pixels after normalisation.
        sha256: hex digest of ``data``; identifies the image everywhere (cache keys, seeds).
        origin: where it came from (a path, or ``"<bytes>"``/``"<PIL>"``), for error messages.
    """

    __slots__ = ("__dict__", "data", "height", "mime", "origin", "sha256", "width")

    def __init__(self, data: bytes, mime: str, width: int, height: int, origin: str = "<bytes>"):
        self.data = data
        self.mime = mime
        self.width = width
        self.height = height
        self.origin = origin
        self.sha256 = hashlib.sha256(data).hexdigest()

    @cached_property
    def base64(self) -> str:
        """Base64 text of :attr:`data`, computed once."""
        return base64.b64encode(self.data).decode("ascii")

    @cached_property
    def data_url(self) -> str:
        """``data:<mime>;base64,...`` URL, computed once and reused."""
        return f"data:{self.mime};base64,{self.base64}"

    @cached_property
    def data_url_json(self) -> bytes:
        """The data URL as a JSON string literal (it needs no escaping), computed once."""
        return b'"' + self.data_url.encode("ascii") + b'"'

    def to_pil(self) -> Image.Image:
        """Decode to a PIL RGB image (a new object each call)."""
        with Image.open(io.BytesIO(self.data)) as im:
            return im.convert("RGB")

    def __repr__(self) -> str:
        return f"ImageData({self.origin!r}, {self.width}x{self.height}, {self.mime}, {self.sha256[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageData) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Normalise any PIL mode (CMYK, P, LA, RGBA, I;16, I, F, 1, L) to RGB.

    Transparent pixels are composited onto white, which is how viewers show them; 16-bit and
    float images are scaled to 8 bits by their own range.
    """
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = im.convert("F")
        lo, hi = arr.getextrema()
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return arr.point(lambda v: (v - lo) * scale).convert("L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _fit_pixel_budget(im: Image.Image, max_pixels: int | None) -> Image.Image:
    if not max_pixels or im.width * im.height <= max_pixels:
        return im
    scale = (max_pixels / (im.width * im.height)) ** 0.5
    size = (max(1, int(im.width * scale)), max(1, int(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS)


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> ImageData:
    """Load and validate an image from a path, bytes, a PIL image or an existing ImageData.

    Args:
        source: file path, raw encoded bytes, ``PIL.Image.Image`` or ``ImageData``.
        max_pixels: optional pixel budget; larger images are downscaled (aspect kept).
        max_image_pixels: decompression-bomb limit; larger images are refused.
        max_image_bytes: largest image file read from disk.

    Raises:
        ImageError: its ``kind`` says why: ``not_found`` (no such file), ``not_a_file`` (a
            directory, device or pipe), ``too_large`` (file size or pixel count over the limit,
            bombs included), ``not_an_image``, ``corrupt_image`` (truncated or corrupt data),
            ``bad_input`` (a bad argument) or ``image`` (empty).
    """
    if max_pixels is not None and max_pixels < 1:
        raise ImageError(f"max_pixels must be a positive number of pixels (got {max_pixels})", kind="bad_input")
    if isinstance(source, ImageData):
        if max_pixels and source.width * source.height > max_pixels:
            return load_image(source.data, max_pixels=max_pixels, max_image_pixels=max_image_pixels)
        return source
    if isinstance(source, Image.Image):
        return _from_pil(source, "<PIL>", max_pixels, fmt=None, raw=None)

    if isinstance(source, (str, Path)):
        origin = str(source)
        raw = _read_image_file(Path(source), max_image_bytes)
    elif isinstance(source, (bytes, bytearray)):
        origin, raw = "<bytes>", bytes(source)
    else:
        raise ImageError(f"unsupported image source type {type(source).__name__}", kind="bad_input")

    if not raw:
        raise ImageError(f"{origin}: empty image (0 bytes)")
    try:
        # Pillow's own limit (a global) is left alone: we refuse above ``max_image_pixels`` after
        # reading the header, before decoding. Pillow still raises above twice its own limit.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(raw))
        with opened as im:
            if im.width * im.height > max_image_pixels:
                raise ImageError(
                    f"{origin}: {im.width}x{im.height} exceeds the {max_image_pixels:,}-pixel limit "
                    "(possible decompression bomb)",
                    kind="too_large",
                )
            fmt = im.format
            im.load()
            return _from_pil(im, origin, max_pixels, fmt=fmt, raw=raw)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{origin}: refused as a possible decompression bomb ({exc})", kind="too_large") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{origin}: not a recognised image format", kind="not_an_image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{origin}: corrupt or truncated image ({exc})", kind="corrupt_image") from exc


def _read_image_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular image file; anything else is refused with what it is."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file", kind="not_found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})", kind="bad_input") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{path}: is {_file_type(info.st_mode)}, not an image file", kind="not_a_file")
    if info.st_size > max_bytes:
        raise ImageError(f"{path}: {info.st_size:,} bytes, over the {max_bytes:,}-byte limit per image",
                         kind="too_large")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})", kind="bad_input") from None


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _from_pil(
    im: Image.Image, origin: str, max_pixels: int | None, *, fmt: str | None, raw: bytes | None
) -> ImageData:
    rotated = _has_orientation(im)
    rgb = _to_rgb(ImageOps.exif_transpose(im) if rotated else im)
    fitted = _fit_pixel_budget(rgb, max_pixels)
    unchanged = raw is not None and fmt in _PASSTHROUGH_FORMATS and im.mode == "RGB"
    unchanged = unchanged and not rotated and fitted is rgb
    if unchanged:
        return ImageData(raw, _PASSTHROUGH_FORMATS[fmt], fitted.width, fitted.height, origin)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        fitted.save(buffer, format="JPEG", quality=95)
        mime = "image/jpeg"
    else:
        fitted.save(buffer, format="PNG")
        mime = "image/png"
    return ImageData(buffer.getvalue(), mime, fitted.width, fitted.height, origin)


def _has_orientation(im: Image.Image) -> bool:
    try:
        return im.getexif().get(0x0112, 1) not in (1, None)
    except Exception:
        return False
