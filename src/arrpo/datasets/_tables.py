"""Tables from a path: one file, or a dataset folder as the Hugging Face Hub lays it out.

A Hub dataset folder holds shards named by split, optionally below one folder per configuration:

* ``<config>/<split>-00000-of-00001.parquet`` (e.g. GenAI-Bench ``image_edition/test_v1-…``),
  ``data/<split>-….parquet`` (the default configuration), ``<config>/<split>/0000.parquet`` (the
  Hub's parquet conversion), ``<split>.parquet``;
* ``save_to_disk`` output: ``<split>/data-00000-of-00001.arrow`` (a dataset dict) or
  ``data-00000-of-00001.arrow`` (one dataset).

Splits and configurations are matched by exact name and never merged silently: when a folder has
several and the options do not choose (``split=NAME``, ``config=NAME``; ``a,b`` or ``*`` to take
several on purpose), :class:`DatasetError` lists them. Everything is read with ``pyarrow``; the
``datasets`` library is not needed (and not used even when installed, so the same rules apply).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arrpo.datasets._base import DatasetError, DatasetOptions
from arrpo.datasets._files import arrow_rows, parquet_rows, read_located_table_file

_SHARD = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?$")
_NUMBERED = re.compile(r"^\d+$")
_TABLE_SUFFIXES = (".parquet", ".arrow")


@dataclass(frozen=True)
class TablePart:
    """The files of one (configuration, split) of a dataset folder; ``None`` where unnamed."""

    config: str | None
    split: str | None
    files: tuple[Path, ...]

    def name(self) -> str:
        return "/".join(p for p in (self.config, self.split) if p) or "(all)"


def table_files(root: Path) -> list[Path]:
    """Parquet and Arrow files below ``root`` (hidden folders such as ``.cache`` skipped)."""
    return sorted(
        p for p in root.rglob("*")
        if p.suffix in _TABLE_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def locate(root: Path, file: Path) -> tuple[str | None, str | None]:
    """The (configuration, split) a shard belongs to, from its path below ``root``."""
    relative = file.relative_to(root)
    folders = list(relative.parts[:-1])
    stem = file.name[: -len(file.suffix)]
    match = _SHARD.match(stem)
    saved = bool(match) and match.group("split") == "data" and file.suffix == ".arrow"  # save_to_disk shard
    if match and not saved:
        split: str | None = match.group("split")
    elif folders and (saved or _NUMBERED.match(stem)):
        split = folders.pop()  # save_to_disk "<split>/data-…arrow" or converted "<config>/<split>/0000.parquet"
    elif saved or _NUMBERED.match(stem):
        split = None  # a single saved dataset: "data-00000-of-00001.arrow"
    else:
        split = stem
    if folders and folders[0] == "data":
        folders = folders[1:]
    if folders and split is not None and folders[-1] == split:
        folders.pop()
    return ("/".join(folders) or None), split


def hub_parts(root: Path) -> list[TablePart]:
    """Every (configuration, split) of a dataset folder with its files."""
    grouped: dict[tuple[str | None, str | None], list[Path]] = {}
    for file in table_files(root):
        grouped.setdefault(locate(root, file), []).append(file)
    return [TablePart(config, split, tuple(files)) for (config, split), files in grouped.items()]


def choose(values: Iterable[str | None], wanted: str | None, what: str, where: Path) -> set[str | None]:
    """The chosen names among ``values``: exact matches of ``wanted`` (``a,b``; ``*`` = all).

    Several values and no choice is an error listing them; an unknown name is an error too.
    """
    names = sorted({v for v in values}, key=lambda v: (v is None, v or ""))
    shown = ", ".join(n if n is not None else "(unnamed)" for n in names)
    if wanted is None:
        if len(names) > 1:
            raise DatasetError(
                f"{where} has {len(names)} {what}s ({shown}); choose one with --dataset-option {what}=NAME "
                f"(or {what}=a,b / {what}=* to read several on purpose)")
        return set(names)
    if wanted.strip() == "*":
        return set(names)
    chosen = {w.strip() for w in wanted.split(",") if w.strip()}
    unknown = sorted(c for c in chosen if c not in names)
    if unknown:
        raise DatasetError(f"{where}: no {what} named {', '.join(map(repr, unknown))} (has {shown})")
    return set(chosen)


def select_parts(root: Path, parts: list[TablePart], options: DatasetOptions) -> list[TablePart]:
    """The parts chosen by the options' ``config`` and ``split`` (see :func:`choose`)."""
    if not parts:
        raise DatasetError(f"{root}: no .parquet or .arrow files found (is this the dataset folder?)")
    configs = choose((p.config for p in parts), options.config, "config", root)
    parts = [p for p in parts if p.config in configs]
    splits = choose((p.split for p in parts), options.split, "split", root)
    return [p for p in parts if p.split in splits]


def read_parts(parts: list[TablePart]) -> Iterator[tuple[TablePart, dict[str, Any]]]:
    for part in parts:
        parquet = [f for f in part.files if f.suffix == ".parquet"]
        arrow = [f for f in part.files if f.suffix == ".arrow"]
        for row in parquet_rows(parquet) if parquet else arrow_rows(arrow):
            yield part, row


def read_table(path: Path, options: DatasetOptions) -> Iterator[tuple[TablePart, dict[str, Any]]]:
    """Rows of a file (JSON, JSONL, CSV, parquet, Arrow) or of a Hub dataset folder, with the part
    (configuration/split) each row comes from."""
    for _, part, row in read_located_table(path, options):
        yield part, row


def read_located_table(path: Path, options: DatasetOptions) -> Iterator[tuple[str, TablePart, dict[str, Any]]]:
    """:func:`read_table` with where each row is: ``line N`` of a JSON-lines file, else ``record N``."""
    if path.is_dir():
        for number, (part, row) in enumerate(read_parts(select_parts(path, hub_parts(path), options)), start=1):
            yield f"record {number}", part, row
        return
    if options.split is not None or options.config is not None:
        raise DatasetError(f"{path} is one file: the split/config options choose among the files of a "
                           "dataset folder; pass the folder, or drop the option")
    part = TablePart(None, None, (path,))
    for where, row in read_located_table_file(path):
        yield where, part, row


def reads_several_parts(options: DatasetOptions) -> bool:
    """Whether the options ask for several splits/configurations on purpose (``a,b`` or ``*``):
    then adapters prefix row-number ids with the part, so ids stay unique."""
    return any(value is not None and ("," in value or value.strip() == "*") for value in (options.split, options.config))
