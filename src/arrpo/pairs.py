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

from arrpo.errors import ArrpoError
from arrpo.images import load_image
from arrpo.rubric import Rubric
from arrpo.schema import Comparison


class PairFileError(ArrpoError, ValueError, kind="bad_input"):
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
    """Parse a pair file lazily; raises :class:`PairFileError` naming the bad line.

    Pair ids must be unique: a repeated id is refused with both line numbers.
    """
    path = Path(path)
    first_line: dict[str, int] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            data.setdefault("id", f"line-{number}")
            data["id"] = str(data["id"])
            record = PairRecord.model_validate(data)
        except (ValueError, ValidationError, RecursionError) as exc:
            raise PairFileError(f"{path}:{number}: {_short(exc)}") from exc
        if record.id in first_line:
            raise PairFileError(
                f"{path}:{number}: duplicate pair id {record.id!r} (also on line {first_line[record.id]}); "
                "every pair needs its own id, or its verdicts would overwrite each other"
            )
        first_line[record.id] = number
        yield record


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a pair file; a missing or unreadable file is a :class:`PairFileError`."""
    try:
        with path.open("r", encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except FileNotFoundError:
        raise PairFileError(f"{path}: no such pair file", kind="not_found") from None
    except IsADirectoryError:
        raise PairFileError(f"{path}: is a directory, not a pair file") from None
    except UnicodeDecodeError as exc:
        raise PairFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PairFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
    return str(exc)
