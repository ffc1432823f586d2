"""Turning the base64 image fields of a request into validated images, with precise errors.

Every image goes through :func:`arrpo.images.load_image` (format, truncation, decompression-bomb
checks, normalisation). Strings that look like file paths or URLs are refused with a message that
says so: the service never reads server-side files or fetches URLs.
"""

from __future__ import annotations

import base64
import binascii
import re

from arrpo.errors import HTTP_STATUS
from arrpo.images import ImageData, ImageError, load_image
from arrpo.server.errors import ApiError

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w=.+-]+)*);base64,", re.I)
_PATH_LIKE = re.compile(
    r"""^(
        [a-z][a-z0-9+.-]*://      # a URL: file://, http://, s3:// ...
      | [a-z]:[\\/]               # a Windows drive path
      | ~                         # a home-relative path
      | \.{1,2}[\\/]              # ./ or ../
      | \\\\                      # a UNC path
    )""",
    re.I | re.X,
)
_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|webp|gif|bmp|tiff?|avif|heic)$", re.I)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s_-]*$")


def looks_like_path(value: str) -> bool:
    """Heuristic: a short string that reads as a file path or URL rather than base64 data."""
    text = value.strip()
    if len(text) > 4096:
        return False
    if _PATH_LIKE.match(text) or _IMAGE_SUFFIX.search(text):
        return True
    # An absolute POSIX path: base64 can start with "/" (JPEG) but is never this short with several slashes.
    return text.startswith("/") and text.count("/") >= 2 and len(text) < 512 and "+" not in text


def _path_error(field: str) -> ApiError:
    return ApiError(
        422, "path_not_allowed",
        f"{field}: looks like a file path or URL; send the image bytes base64-encoded in the JSON "
        "(the service never reads server-side files or fetches URLs)",
    )


def decode_base64_field(field: str, value: str) -> bytes:
    """The raw bytes of one image field (base64, URL-safe base64 or a ``data:`` URL)."""
    text = value.strip()
    match = _DATA_URL.match(text)
    if match:
        text = text[match.end():]
    elif not _BASE64_CHARS.match(text) or looks_like_path(text):
        if looks_like_path(text):
            raise _path_error(field)
        raise ApiError(422, "bad_base64", f"{field}: not valid base64 (unexpected characters)")
    compact = re.sub(r"\s+", "", text)
    if not compact:
        raise ApiError(422, "bad_base64", f"{field}: empty image string")
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, "bad_base64", f"{field}: not valid base64 ({exc})") from exc


def decode_image_field(
    field: str, value: str, *, max_image_pixels: int, max_pixels: int | None = None
) -> ImageData:
    """Decode and validate one image field; raise :class:`ApiError` (413 or 422) when unusable."""
    raw = decode_base64_field(field, value)
    try:
        image = load_image(raw, max_pixels=max_pixels, max_image_pixels=max_image_pixels)
    except ImageError as exc:
        message = str(exc).replace("<bytes>", field, 1)
        if exc.kind == "too_large":
            raise ApiError(
                413, "image_too_large",
                f"{field}: larger than the {max_image_pixels:,}-pixel limit per image; send a smaller "
                f"image ({message.removeprefix(field + ': ')})",
            ) from exc
        if looks_like_path(value):
            raise _path_error(field) from exc
        code = exc.kind if exc.kind in ("not_an_image", "corrupt_image") else "invalid_image"
        raise ApiError(HTTP_STATUS.get(exc.kind, 422), code, message) from exc
    return ImageData(image.data, image.mime, image.width, image.height, origin=field)
