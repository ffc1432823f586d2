"""The one typed value every dataset adapter yields: a labelled preference pair."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arrpo.images import ImageData, load_image

Label = Literal["A", "B", "tie"]


class ImageRef(BaseModel):
    """Where an image lives: a file path, or the encoded bytes themselves (datasets that embed images)."""

    model_config = ConfigDict(frozen=True)

    path: str | None = None
    data: bytes | None = Field(None, repr=False)

    def load(self, max_pixels: int | None = None) -> ImageData:
        """Load and validate the image (raises :class:`arrpo.images.ImageError`)."""
        if self.data is not None:
            image = load_image(self.data, max_pixels=max_pixels)
            if self.path:
                image.origin = self.path
            return image
        if self.path is None:
            from arrpo.images import ImageError

            raise ImageError("image reference has neither a path nor data")
        return load_image(Path(self.path), max_pixels=max_pixels)

    def describe(self) -> str:
        return self.path or f"<{len(self.data or b'')} embedded bytes>"


class PreferencePair(BaseModel):
    """A human-labelled pair: which of two images is better for a prompt (and a source, for edits).

    ``label`` is ``A``, ``B`` or ``tie`` (only datasets that record ties produce it). ``subset`` is
    the breakdown key in reports (benchmark category, source, ...). ``meta`` keeps upstream fields.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    task: Literal["t2i", "edit"] = "t2i"
    prompt: str
    image_a: ImageRef
    image_b: ImageRef
    source: ImageRef | None = None
    label: Label
    subset: str = "all"
    meta: dict[str, Any] = Field(default_factory=dict)

    def flipped(self) -> PreferencePair:
        """The same pair with A and B exchanged (the label follows)."""
        label: Label = {"A": "B", "B": "A", "tie": "tie"}[self.label]  # type: ignore[assignment]
        return self.model_copy(update={"image_a": self.image_b, "image_b": self.image_a, "label": label})

    def manifest(self) -> dict[str, Any]:
        """JSON-able description for the run directory (embedded bytes are not copied)."""
        return {
            "id": self.id,
            "task": self.task,
            "prompt": self.prompt,
            "image_a": self.image_a.describe(),
            "image_b": self.image_b.describe(),
            "source": self.source.describe() if self.source else None,
            "label": self.label,
            "subset": self.subset,
            "meta": self.meta,
        }


def coin(seed: int | str, key: str) -> bool:
    """A deterministic fair coin from ``seed`` and ``key`` (same inputs, same side, every run)."""
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()[0] % 2 == 1


def randomise_ab(pair: PreferencePair, seed: int | str = 0) -> PreferencePair:
    """Swap A and B for about half of the pairs, chosen by a hash of the pair id and ``seed``.

    For datasets whose preferred image always sits in the same slot (MJ-Bench ``image_0``,
    HPDv3 ``path1``), so that "A" carries no information about the label.
    """
    return pair.flipped() if coin(seed, pair.id) else pair
