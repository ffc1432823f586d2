"""The project's pair file: one JSON object per line describing a comparison to judge.

Schema (JSONL, one object per line)::

    {"id": "p1", "prompt": "a red bicycle", "image_a": "a.png", "image_b": "b.png"}
    {"id": "e1", "task": "edit", "prompt": "make the sky pink",
     "source": "src.png", "image_a": "e1.png", "image_b": "e2.png"}

``prompt`` may also be called ``instruction`` or ``caption``. ``task`` defaults to ``edit`` when a
``source`` is given, else ``t2i``. Image paths are relative to ``images_root`` (default: the pair
file's folder). ``id`` defaults to ``line-N``. ``label`` (``"A"`` or ``"B"``, the human-preferred
image) is optional and ignored by ``arrpo judge``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from arrpo.images import load_image
from arrpo.rubric import Rubric
from arrpo.schema import Comparison


class PairFileError(ValueError):
    """A line of a pair file is not a valid pair; the message names the file and line."""


class PairRecord(BaseModel):
    """One line of a pair file."""

    model_config = ConfigDict(extra="ignore")

    id: str
    prompt: str = Field(validation_alias=AliasChoices("prompt", "instruction", "caption"))
    image_a: str
    image_b: str
    source: str | None = None
    task: Literal["t2i", "edit"] | None = None
    label: Literal["A", "B"] | None = None

    def resolved_task(self) -> Literal["t2i", "edit"]:
        return self.task or ("edit" if self.source else "t2i")

    def to_comparison(
        self, images_root: Path, *, rubric: Rubric | None = None, max_pixels: int | None = None
    ) -> Comparison:
        """Load the images and build the comparison (raises ``ImageError`` for bad images)."""

        def load(name: str):
            path = Path(name)
            return load_image(path if path.is_absolute() else images_root / path, max_pixels=max_pixels)

        return Comparison(
            id=self.id,
            task=self.resolved_task(),
            prompt=self.prompt,
            image_a=load(self.image_a),
            image_b=load(self.image_b),
            source=load(self.source) if self.source else None,
            rubric=rubric,
        )


def read_pairs(path: str | Path) -> Iterator[PairRecord]:
    """Parse a pair file lazily; raises :class:`PairFileError` naming the bad line."""
    path = Path(path)
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                data.setdefault("id", f"line-{number}")
                data["id"] = str(data["id"])
                yield PairRecord.model_validate(data)
            except (ValueError, ValidationError) as exc:
                raise PairFileError(f"{path}:{number}: {_short(exc)}") from exc


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
    return str(exc)
