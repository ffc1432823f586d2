"""Dataset adapters: benchmark files as their authors distribute them in, :class:`PreferencePair` out.

Choose one with a ``KIND:PATH`` spec, e.g. ``mjbench:artifacts`` or ``genai-bench:GenAI-Bench``
(``docs/evaluation.md`` has the table of kinds, layouts and label conventions). Each kind is one
module of this package that registers itself with :func:`~arrpo.datasets._base.register`;
a new benchmark is one new module named in :data:`ADAPTER_MODULES` (modules whose names start
with ``_`` are shared helpers; :mod:`~arrpo.datasets.pairs` holds the pair model and the
``arrpo judge`` pair file, :mod:`~arrpo.datasets.seeds` the seed formats of rubric learning).

:func:`load_dataset` reads a spec, checks every image (file exists, embedded bytes decode) before
anything is judged, and reports what it skipped; :func:`load_pairs` returns just the pairs. The
same pairs seed rubric learning (``arrpo rubric learn --dataset KIND:PATH``).
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from arrpo.datasets._base import (
    REGISTRY,
    Adapter,
    DatasetError,
    DatasetOptions,
    Reader,
    register,
)
from arrpo.datasets._files import read_json_records
from arrpo.datasets._images import (
    image_cell,
    missing_images_error,
    resolve_path,
    unusable_images,
)
from arrpo.datasets.pairs import PairIds, PreferencePair
from arrpo.errors import describe_validation_error

#: The benchmark adapter modules; each registers its kinds on import (a new benchmark: one module, one name here).
ADAPTER_MODULES = ("editreward", "genai_bench", "generic", "hpdv3", "imagereward", "mjbench", "mmrb2")
for _name in ADAPTER_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

#: Dataset kinds accepted in ``KIND:PATH`` specs (kind -> adapter).
ADAPTERS: dict[str, Adapter] = REGISTRY

__all__ = [
    "ADAPTERS", "Adapter", "DatasetError", "DatasetOptions", "LoadedDataset", "Reader", "image_cell",
    "load_dataset", "load_pairs", "parse_spec", "read_json_records", "register", "resolve_path",
]

@dataclass
class LoadedDataset:
    """The pairs of a dataset spec and what was left out on the way (and why)."""

    pairs: list[PreferencePair]
    kind: str
    path: Path
    notes: list[str] = field(default_factory=list)
    skipped_missing: dict[str, list[str]] = field(default_factory=dict)


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split ``KIND:PATH``; raises :class:`DatasetError` naming the known kinds."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise DatasetError(f"dataset must be KIND:PATH (kinds: {', '.join(sorted(ADAPTERS))}), got {spec!r}")
    if kind not in ADAPTERS:
        raise DatasetError(f"unknown dataset kind {kind!r}; known: {', '.join(sorted(ADAPTERS))}")
    return kind, Path(rest).expanduser()


def load_dataset(
    spec: str,
    images: str | Path | None = None,
    options: DatasetOptions | dict[str, Any] | None = None,
    *,
    limit: int | None = None,
    sample: int | None = None,
    check_images: bool = True,
    skip_missing: bool = False,
) -> LoadedDataset:
    """All pairs of a dataset spec, ids checked to be unique, images checked.

    ``limit`` keeps the first N pairs; ``sample`` keeps N pairs drawn with the options' seed (same
    seed, same pairs; dataset order kept). With ``check_images`` (default) every image of the kept
    pairs must exist or, when embedded, decode: otherwise :class:`DatasetError` gives the count, the
    first few paths and the fix — or, with ``skip_missing``, those pairs are left out and listed
    in ``skipped_missing``.
    """
    kind, path = parse_spec(spec)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    try:
        opts = options if isinstance(options, DatasetOptions) else DatasetOptions(**(options or {}))
    except ValidationError as exc:
        problems = describe_validation_error(exc, unknown="unknown option")
        raise DatasetError(f"bad dataset option ({problems}); options: {', '.join(DatasetOptions.model_fields)}") from None
    root = Path(images).expanduser() if images is not None else None
    if root is not None and not root.is_dir():
        raise DatasetError(f"image root {root} is not a directory")
    reader = Reader(path, root, opts)
    pairs: list[PreferencePair] = []
    ids = PairIds()
    for number, pair in enumerate(ADAPTERS[kind].read(reader), start=1):
        where, reader.location = reader.location or f"pair {number}", None
        problem = ids.problem(pair.id, where)  # the one id check of every adapter's pairs
        if problem is not None:
            raise DatasetError(f"{path}: {where}: {problem}")
        pairs.append(pair)
        if limit is not None and len(pairs) >= limit:
            break
    if sample is not None and sample < len(pairs):
        keep = set(random.Random(opts.seed).sample(range(len(pairs)), sample))
        pairs = [p for i, p in enumerate(pairs) if i in keep]
    loaded = LoadedDataset(pairs=pairs, kind=kind, path=path, notes=reader.notes)
    if check_images:
        problems = unusable_images(pairs)
        if problems and not skip_missing:
            raise missing_images_error(spec, problems, len(pairs))
        loaded.skipped_missing = problems
        loaded.pairs = [p for p in pairs if p.id not in problems]
    return loaded


def load_pairs(spec: str, *args: Any, **kwargs: Any) -> list[PreferencePair]:
    """The pairs of :func:`load_dataset` (same arguments, same checks)."""
    return load_dataset(spec, *args, **kwargs).pairs
