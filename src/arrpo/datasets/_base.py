"""What every adapter shares: the error, the options, the registry and small helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arrpo.datasets.pairs import PreferencePair, randomise_ab
from arrpo.errors import ArrpoError


class DatasetError(ArrpoError, ValueError, kind="dataset"):
    """A dataset cannot be read as the kind it was given as; the message says why and what to do."""


class DatasetOptions(BaseModel):
    """Adapter options (``--dataset-option key=value`` on the command line).

    ``None`` means the adapter's own default (documented per adapter). Unknown keys are an error
    (a misspelt ``split`` must not be ignored).
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, description="Seed of the deterministic A/B randomisation.")
    randomise_ab: bool | None = Field(None, description="Swap A/B for half the pairs by id hash.")
    drop_ties: bool | None = Field(None, description="Leave out pairs whose human label is a tie.")
    subset_field: str | None = Field(None, description="Upstream field to use as the subset.")
    split: str | None = Field(None, description="Split of a dataset folder: one name, 'a,b', or '*' for all (exact names).")
    config: str | None = Field(None, description="Configuration (sub-dataset) of a dataset folder: one name, 'a,b' or '*'.")
    all_groups: bool = Field(False, description="EditReward-Bench: read the 3- and 4-candidate groups too (default K=2 only).")


class Reader:
    """What an adapter gets: the path, the image root, the options, a list for notes (files
    skipped and why) that the loader reports, and ``location``: where the pair about to be yielded
    was read (``"line 4"``), set by an adapter that knows it so the loader's messages name it."""

    def __init__(self, path: Path, images: Path | None, options: DatasetOptions):
        self.path = path
        self.images = images
        self.options = options
        self.notes: list[str] = []
        self.location: str | None = None

    def bases(self, folder: Path | None = None) -> list[Path]:
        """Folders to resolve relative image paths against: ``--images`` first, then ``folder``
        (default: the dataset folder, or the dataset file's folder)."""
        here = folder or (self.path if self.path.is_dir() else self.path.parent)
        return [self.images, here] if self.images is not None else [here]

    def subset(self, record: dict[str, Any], default: str) -> str:
        """The subset of a record: its ``subset_field`` when that option is set, else ``default``."""
        if self.options.subset_field:
            value = record.get(self.options.subset_field)
            return str(value) if value not in (None, "") else default
        return default

    def finish(self, pair: PreferencePair, randomise_default: bool) -> PreferencePair:
        """Apply the A/B coin when the adapter's default (or ``randomise_ab``) asks for it."""
        randomise = self.options.randomise_ab if self.options.randomise_ab is not None else randomise_default
        return randomise_ab(pair, self.options.seed) if randomise else pair


AdapterFunction = Callable[[Reader], Iterator[PreferencePair]]


@dataclass(frozen=True)
class Adapter:
    """One dataset kind: its name, a one-line description of the layout it reads, and the reader."""

    kind: str
    layout: str
    read: AdapterFunction


#: Dataset kinds accepted in ``KIND:PATH`` specs, filled by :func:`register` as adapter modules load.
REGISTRY: dict[str, Adapter] = {}


def register(*kinds: str, layout: str) -> Callable[[AdapterFunction], AdapterFunction]:
    """Register an adapter function under one or more kinds (a new benchmark is one new module)."""

    def decorate(function: AdapterFunction) -> AdapterFunction:
        for kind in kinds:
            if kind in REGISTRY:
                raise RuntimeError(f"dataset kind {kind!r} registered twice")
            REGISTRY[kind] = Adapter(kind, layout, function)
        return function

    return decorate


def short_hash(*parts: Any) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:12]
