"""Images of dataset rows: resolving relative paths, reading table cells, and the check at load
that every image exists (files) or decodes (embedded bytes) before any model is called."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from arrpo.datasets._base import DatasetError
from arrpo.datasets.pairs import ImageRef, PreferencePair


def resolve_path(name: str, bases: Iterable[Path | None]) -> str:
    """The first existing ``base/name`` (absolute names are kept); the first candidate if none exists."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return str(path)
    candidates = [base / path for base in bases if base is not None]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return str(candidates[0] if candidates else path)


def image_cell(value: Any, bases: Sequence[Path | None], what: str) -> ImageRef:
    """An image from a table cell: a path, ``{"bytes", "path"}`` (how the Hub stores an ``Image``
    column, bytes raw or base64 in JSON exports), raw bytes or a PIL image."""
    if isinstance(value, str) and value:
        return ImageRef(path=resolve_path(value, bases))
    if isinstance(value, (bytes, bytearray)):
        return ImageRef(data=bytes(value))
    if isinstance(value, dict):
        data = value.get("bytes")
        if isinstance(data, str):
            try:
                data = base64.b64decode(data, validate=True)
            except ValueError:
                raise DatasetError(f"{what}: 'bytes' is a string but not base64") from None
        if data:
            return ImageRef(data=bytes(data), path=value.get("path") or None)
        if value.get("path"):
            return ImageRef(path=resolve_path(value["path"], bases))
    if hasattr(value, "save") and hasattr(value, "mode"):  # a PIL image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return ImageRef(data=buffer.getvalue())
    raise DatasetError(f"{what}: no usable image (got {type(value).__name__})")


def image_problem(ref: ImageRef) -> str | None:
    """Why an image cannot be used (missing file, undecodable bytes), or ``None`` if it can."""
    if ref.data is not None:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(ref.data)) as image:
                image.verify()
        except Exception as exc:  # PIL raises many types for bad data
            return f"{ref.describe()}: embedded bytes do not decode ({type(exc).__name__})"
        return None
    if ref.path is None:
        return "an image with neither a path nor bytes"
    return None if Path(ref.path).is_file() else ref.path


def unusable_images(pairs: Sequence[PreferencePair]) -> dict[str, list[str]]:
    """Pair id -> the problems of its images, for the pairs that have any."""
    problems: dict[str, list[str]] = {}
    checked: dict[str, str | None] = {}
    for pair in pairs:
        for ref in pair.images():
            key = ref.path if ref.data is None and ref.path else f"id:{id(ref)}"
            if key not in checked:
                checked[key] = image_problem(ref)
            if checked[key] is not None:
                problems.setdefault(pair.id, []).append(checked[key])  # type: ignore[arg-type]
    return problems


def missing_images_error(where: str, problems: dict[str, list[str]], total: int) -> DatasetError:
    """The error that stops a run whose images are not all there: count, first few, the fix."""
    paths = [p for found in problems.values() for p in found]
    shown = "; ".join(paths[:3]) + (f" (and {len(paths) - 3} more)" if len(paths) > 3 else "")
    return DatasetError(
        f"{where}: {len(problems)} of {total} pairs have missing or unreadable images ({len(paths)} images): "
        f"{shown}. If the images live elsewhere, point --images at their folder; "
        "--skip-missing leaves those pairs out instead."
    )
