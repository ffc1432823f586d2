"""Pairs: the one labelled-pair model of the project, and the pair file of ``arrpo judge``.

:class:`PreferencePair` is what every dataset adapter yields (``arrpo eval``), what rubric
learning is seeded with (``arrpo rubric learn``), and :func:`coin` is the one A/B coin used
wherever a dataset's preferred image always sits in the same slot.

The project's pair file: one JSON object per line describing a comparison to judge.

Schema (JSONL, one object per line)::

    {"id": "p1", "prompt": "a red bicycle", "image_a": "a.png", "image_b": "b.png"}
    {"id": "e1", "task": "edit", "prompt": "make the sky pink",
     "source": "src.png", "image_a": "e1.png", "image_b": "e2.png"}

``prompt`` may also be called ``instruction`` or ``caption`` (:data:`PROMPT_KEYS`). ``task`` defaults to ``edit`` when a
``source`` is given, else ``t2i``. Image paths are relative to ``images_root`` (default: the pair
file's folder). ``id`` defaults to ``line-N``. ``label`` (``"A"`` or ``"B"``, the human-preferred
image) is optional and ignored by ``arrpo judge``.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from arrpo.errors import ArrpoError, describe_validation_error
from arrpo.images import ImageData, ImageError, load_image
from arrpo.rubric import Rubric
from arrpo.schema import Comparison, task_for
from arrpo.vocab import Task

Label = Literal["A", "B", "tie"]
#: The names a pair's prompt goes by in the project's pair files and the generic dataset layout
#: (the authors' seed format adds ``query``).
PROMPT_KEYS = ("prompt", "instruction", "caption")


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
            raise ImageError("image reference has neither a path nor data")
        return load_image(Path(self.path), max_pixels=max_pixels)

    def describe(self) -> str:
        return self.path or f"<{len(self.data or b'')} embedded bytes>"

    def fingerprint(self) -> str:
        """The path, or a hash of the embedded bytes (for content hashes of a pair set)."""
        if self.data is not None:
            return "sha256:" + hashlib.sha256(self.data).hexdigest()
        return self.path or ""


class PreferencePair(BaseModel):
    """A human-labelled pair: which of two images is better for a prompt (and a source, for edits).

    ``label`` is ``A``, ``B`` or ``tie`` (only datasets that record ties produce it). ``subset`` is
    the breakdown key in reports (benchmark category, source, ...). ``meta`` keeps upstream fields.
    The same value seeds rubric learning (:mod:`arrpo.datasets.seeds`), where ties are left out.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    task: Task = "t2i"
    prompt: str
    image_a: ImageRef
    image_b: ImageRef
    source: ImageRef | None = None
    label: Label
    subset: str = "all"
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def preferred(self) -> Literal["A", "B"]:
        """The preferred side; a tie has none (raises ``ValueError``)."""
        if self.label == "tie":
            raise ValueError(f"pair {self.id!r} is a tie: no image is preferred")
        return self.label

    def flipped(self) -> PreferencePair:
        """The same pair with A and B exchanged (the label follows)."""
        label: Label = {"A": "B", "B": "A", "tie": "tie"}[self.label]  # type: ignore[assignment]
        return self.model_copy(update={"image_a": self.image_b, "image_b": self.image_a, "label": label})

    def images(self) -> list[ImageRef]:
        """Every image of the pair (A, B and the source when there is one)."""
        return [self.image_a, self.image_b] + ([self.source] if self.source is not None else [])

    def load(self, max_pixels: int | None = None) -> LoadedPair:
        """Read and validate the images (raises :class:`~arrpo.images.ImageError`)."""
        return LoadedPair(
            pair=self,
            image_a=self.image_a.load(max_pixels),
            image_b=self.image_b.load(max_pixels),
            source=self.source.load(max_pixels) if self.source is not None else None,
        )

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


@dataclass(frozen=True)
class LoadedPair:
    """A labelled pair with its images in memory."""

    pair: PreferencePair
    image_a: ImageData
    image_b: ImageData
    source: ImageData | None

    @property
    def preferred_image(self) -> ImageData:
        return self.image_a if self.pair.preferred == "A" else self.image_b

    @property
    def other_image(self) -> ImageData:
        return self.image_b if self.pair.preferred == "A" else self.image_a

    def comparison(self, rubric: Rubric | None) -> Comparison:
        """The pair as an unlabelled comparison under ``rubric`` (what a verifier or judge sees)."""
        return Comparison(
            task=self.pair.task,
            prompt=self.pair.prompt,
            image_a=self.image_a,
            image_b=self.image_b,
            source=self.source,
            rubric=rubric,
        )


def coin(seed: int | str, key: str) -> bool:
    """A deterministic fair coin from ``seed`` and ``key`` (same inputs, same side, every run)."""
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()[0] % 2 == 1


def randomise_ab(pair: PreferencePair, seed: int | str = 0) -> PreferencePair:
    """Swap A and B for about half of the pairs, chosen by :func:`coin` of ``seed`` and the pair id.

    For datasets whose preferred image always sits in the same slot (MJ-Bench ``image_0``/``image0``,
    HPDv3 ``path1``), so that "A" carries no information about the label. Evaluation and rubric
    learning both use it, so a pair is shown the same way in both.
    """
    return pair.flipped() if coin(seed, pair.id) else pair


class PairIds:
    """The ids of a pair set being read: where each was first seen, so a repeat names both places.

    One implementation for every reader of pairs (``arrpo judge --pairs``, ``arrpo eval`` datasets):
    ``problem(id, "line 7")`` is ``None`` for a new id, else a message saying what is wrong: a
    repeated id, or one that a verdict file cannot hold as it is (see :func:`id_problem`).
    """

    def __init__(self) -> None:
        self._first: dict[str, str] = {}

    def problem(self, pair_id: str, where: str) -> str | None:
        """Why ``pair_id`` (read at ``where``) cannot be used, or ``None`` (then it is remembered)."""
        unusable = id_problem(pair_id)
        if unusable is not None:
            return unusable
        if pair_id in self._first:
            return (f"duplicate pair id {pair_id!r} (first at {self._first[pair_id]}); every pair needs its "
                    "own id, or its verdicts would overwrite each other")
        self._first[pair_id] = where
        return None


def first_id_problem(ids: Iterable[str]) -> str | None:
    """``pair N: <problem>`` for the first id of a pair set that :class:`PairIds` refuses, or ``None``."""
    seen = PairIds()
    for number, pair_id in enumerate(ids, start=1):
        problem = seen.problem(pair_id, f"pair {number}")
        if problem is not None:
            return f"pair {number}: {problem}"
    return None


def id_problem(pair_id: str) -> str | None:
    """Why a pair id cannot be used as it is, or ``None``.

    A lone surrogate cannot be written as UTF-8 (a verdict would carry another id, and a resumed
    run would never find it); a control character (a newline, an ANSI escape) would corrupt a
    terminal, a log line or a CSV cell. Both are refused when the pairs are read.
    """
    for char in pair_id:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return (f"pair id {pair_id!r} holds a lone surrogate (U+{code:04X}), which UTF-8 cannot store: "
                    "its verdict could never be matched to it; give the pair a plain-text id")
        if unicodedata.category(char) == "Cc":
            return (f"pair id {pair_id!r} holds the control character U+{code:04X}; "
                    "give the pair an id without control characters")
    return None


class PairFileError(ArrpoError, ValueError, kind="bad_input"):
    """A line of a pair file is not a valid pair; the message names the file and line."""


class PairRecord(BaseModel):
    """One line of a pair file."""

    model_config = ConfigDict(extra="ignore")

    id: str
    prompt: str = Field(validation_alias=AliasChoices(*PROMPT_KEYS))
    image_a: str
    image_b: str
    source: str | None = None
    task: Task | None = None
    label: Literal["A", "B"] | None = None

    def resolved_task(self) -> Task:
        return task_for(self.task, self.source)

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
    ids = PairIds()
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
            raise PairFileError(f"{path}:{number}: {describe_validation_error(exc, whole='line')}") from exc
        problem = ids.problem(record.id, f"line {number}")
        if problem is not None:
            raise PairFileError(f"{path}:{number}: {problem}")
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
