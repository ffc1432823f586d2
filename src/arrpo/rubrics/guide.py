"""Guide exemplars ("ARR w/ guide"): a few worked preferences shown to the criteria generator.

File format: JSON Lines (or a JSON list), one exemplar per object::

    {"prompt": "a red bicycle leaning on a wall", "preferred": "g1_good.png",
     "dispreferred": "g1_bad.png", "rationale": "The bicycle is red and its wheels are round."}
    {"prompt": "make the sky pink", "source": "g2_src.png", "preferred": "g2_good.png",
     "dispreferred": "g2_bad.png", "rationale": "Only the sky changed; the roofline is intact."}

``prompt`` may also be called ``instruction`` or ``caption``; ``source`` is required for edit
rubrics. Image paths are relative to the guide file's folder. Exemplars are shown in file order
before the pair the generator explains; they never reach the verifier.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from arrpo.datasets.pairs import PROMPT_KEYS
from arrpo.errors import ArrpoError, describe_validation_error
from arrpo.images import ImageData, ImageError, load_image
from arrpo.prompts import render
from arrpo.schema import Task
from arrpo.vlm.base import ImagePart, Part, TextPart


class GuideFileError(ArrpoError, ValueError, kind="bad_input"):
    """A guide file cannot be used; the message names the file and the exemplar."""


class _GuideRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, validation_alias=AliasChoices(*PROMPT_KEYS))
    preferred: str
    dispreferred: str = Field(validation_alias=AliasChoices("dispreferred", "other", "rejected"))
    rationale: str = Field(min_length=1)
    source: str | None = None


@dataclass(frozen=True)
class GuideExemplar:
    """One demonstration: prompt, preferred and dispreferred image, rationale (source for edits)."""

    prompt: str
    preferred: ImageData
    dispreferred: ImageData
    rationale: str
    source: ImageData | None = None


@dataclass(frozen=True)
class Guide:
    """The exemplars of one guide file and the file's hash (recorded in rubric provenance)."""

    exemplars: tuple[GuideExemplar, ...]
    sha256: str

    def parts(self, task: Task) -> list[Part]:
        """Message parts that show the exemplars (an intro, then each exemplar's text and images)."""
        parts: list[Part] = [TextPart(render("rubric_guide", count=len(self.exemplars)))]
        noun = "Editing instruction" if task == "edit" else "Caption"
        for number, ex in enumerate(self.exemplars, start=1):
            parts.append(TextPart(f"Example {number}. {noun}: {ex.prompt}"))
            if ex.source is not None:
                parts += [TextPart(f"Example {number}, source image:"), ImagePart(ex.source)]
            parts += [
                TextPart(f"Example {number}, preferred image:"), ImagePart(ex.preferred),
                TextPart(f"Example {number}, other image:"), ImagePart(ex.dispreferred),
                TextPart(f"Example {number}, why people preferred it: {ex.rationale}"),
            ]
        return parts


def read_guide(path: str | Path, task: Task, *, max_pixels: int | None = None) -> Guide:
    """Read and load a guide file (raises :class:`GuideFileError` with the exemplar's number)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuideFileError(f"{path}: cannot read guide file ({exc})") from exc
    stripped = text.lstrip()
    try:
        items = json.loads(text) if stripped.startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()
        ]
    except json.JSONDecodeError as exc:
        raise GuideFileError(f"{path}: not valid JSON/JSONL ({exc})") from exc
    exemplars = []
    for number, item in enumerate(items, start=1):
        try:
            record = _GuideRecord.model_validate(item)
        except ValidationError as exc:
            detail = describe_validation_error(exc, whole="exemplar")
            raise GuideFileError(f"{path}: exemplar {number}: {detail}") from exc
        if task == "edit" and not record.source:
            raise GuideFileError(f"{path}: exemplar {number} needs a 'source' image for an edit rubric")

        def load(name: str) -> ImageData:
            image = Path(name)
            try:
                return load_image(image if image.is_absolute() else path.parent / image, max_pixels=max_pixels)
            except ImageError as exc:
                raise GuideFileError(f"{path}: exemplar {number}: {exc}") from exc  # noqa: B023

        exemplars.append(
            GuideExemplar(
                prompt=record.prompt.strip(),
                preferred=load(record.preferred),
                dispreferred=load(record.dispreferred),
                rationale=record.rationale.strip(),
                source=load(record.source) if (record.source and task == "edit") else None,
            )
        )
    if not exemplars:
        raise GuideFileError(f"{path}: the guide file holds no exemplars")
    return Guide(exemplars=tuple(exemplars), sha256=hashlib.sha256(raw).hexdigest())
