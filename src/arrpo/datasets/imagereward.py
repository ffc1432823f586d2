"""ImageRewardDB: human rankings of 4–9 generations per prompt, read as pairs.

Three layouts, recognised by their keys (not by the file name):

* the GitHub ``data/test.json``: one record per prompt, ``id, prompt, generations[], ranking[]``;
* the Hub release's per-image records, ``image_path, prompt_id, prompt, classification,
  image_amount_in_total, rank, overall_rating, …``: in ``metadata-<split>.parquet`` at the repository
  root, and in the JSON beside the images of each folder (``images/test/test_1/test_1.json``);
* a folder: the repository root (choose ``split=`` among its ``metadata-<split>.parquet``), or a
  folder of extracted image folders (``images/test``; ``images`` when ``split=`` is given).

Rank 1 is best. Every two generations of a prompt make one pair (A = the earlier); the lower rank
wins; equal ranks are ties, dropped by default as in the upstream accuracy script. ``image_path``
is relative to the repository root; it is looked up under ``--images``, the dataset folder, the
folders above a per-folder JSON, and finally by file name beside that JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from arrpo.datasets._base import DatasetError, Reader, register
from arrpo.datasets._files import read_json_records, read_table_file, sniff, wrong_kind
from arrpo.datasets._images import image_cell
from arrpo.datasets._tables import choose
from arrpo.datasets.pairs import ImageRef, Label, PreferencePair

_PART = re.compile(r"^(?P<split>.+?)_\d+$")


@register("imagereward", layout="ImageRewardDB: GitHub test.json, Hub metadata-<split>.parquet, per-folder JSON, or the repository folder")
def imagereward(reader: Reader) -> Iterator[PreferencePair]:
    for folder, rows in _sources(reader):
        first = rows[0] if rows else {}
        if "generations" in first:
            yield from _rankings(reader, folder, rows)
        elif "image_path" in first or "image" in first:
            yield from _per_image(reader, folder, rows)
        elif rows:
            raise DatasetError(
                f"{reader.path}: not an ImageRewardDB layout (keys {sorted(first)}); expected the GitHub "
                "test.json (id, prompt, generations, ranking) or the Hub per-image records "
                "(image_path, prompt_id, prompt, rank)")


def _sources(reader: Reader) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """(folder the rows' image paths start from, rows) for each file the path stands for."""
    path, options = reader.path, reader.options
    if path.is_file():
        if options.split is not None or options.config is not None:
            raise DatasetError(f"{path} is one file: split= chooses among the files of the ImageRewardDB folder")
        kind = sniff(path)
        if kind in ("parquet", "arrow"):
            yield path.parent, list(read_table_file(path))
        elif kind in ("json", "jsonl"):
            yield path.parent, read_json_records(path)
        else:
            raise wrong_kind(path, kind, "an ImageRewardDB file",
                             "Pass metadata-<split>.parquet, a per-folder JSON, the GitHub test.json, or the folder.")
        return
    metadata = {f.name[len("metadata-"):-len(".parquet")]: f for f in sorted(path.glob("metadata-*.parquet"))}
    if metadata:
        [split] = _one_split(metadata, options.split, path)
        yield path, list(read_table_file(metadata[split]))
        return
    per_folder = [f for f in sorted(path.rglob("*.json")) if f.stem == f.parent.name]
    if not per_folder:
        raise DatasetError(f"{path}: no metadata-<split>.parquet and no per-folder JSON (<folder>/<folder>.json) "
                           "found; pass the ImageRewardDB folder, a metadata parquet file or the GitHub test.json")
    by_split: dict[str, list[Path]] = {}
    for file in per_folder:
        match = _PART.match(file.stem)
        by_split.setdefault(match.group("split") if match else file.stem, []).append(file)
    for split in sorted(choose(by_split, options.split, "split", path)):  # type: ignore[type-var]
        for file in by_split[split]:  # type: ignore[index]
            yield file.parent, read_json_records(file)


def _one_split(files: dict[str, Path], wanted: str | None, where: Path) -> list[str]:
    chosen = choose(files, wanted, "split", where)
    if len(chosen) != 1:
        raise DatasetError(f"{where}: choose one split of {sorted(files)} (split=NAME)")
    return [str(next(iter(chosen)))]


def _label(rank_a: Any, rank_b: Any) -> Label:
    return "A" if rank_a < rank_b else "B" if rank_a > rank_b else "tie"


def _pairs_of(reader: Reader, item_id: str, prompt: str, images: list[ImageRef], ranks: list[Any],
              record: dict[str, Any]) -> Iterator[PreferencePair]:
    drop_ties = True if reader.options.drop_ties is None else reader.options.drop_ties
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            label = _label(ranks[i], ranks[j])
            if label == "tie" and drop_ties:
                continue
            yield PreferencePair(
                id=f"{item_id}:{i}-{j}", prompt=prompt, image_a=images[i], image_b=images[j], label=label,
                subset=reader.subset(record, "imagereward"), meta={"rank_a": ranks[i], "rank_b": ranks[j]},
            )


def _rankings(reader: Reader, folder: Path, rows: list[dict[str, Any]]) -> Iterator[PreferencePair]:
    """The GitHub test.json: one record per prompt with aligned ``generations`` and ``ranking``."""
    for number, item in enumerate(rows, start=1):
        where = f"{reader.path}: item {number}"
        generations, ranking = item.get("generations"), item.get("ranking")
        if not isinstance(generations, list) or not isinstance(ranking, list) or len(generations) != len(ranking):
            raise DatasetError(f"{where}: 'generations' and 'ranking' must be lists of equal length")
        _check_ranks(ranking, where)
        images = [ImageRef(path=_find(str(g), reader.images, folder)) for g in generations]
        yield from _pairs_of(reader, str(item.get("id") or number), str(item.get("prompt") or ""), images, ranking, item)


def _per_image(reader: Reader, folder: Path, rows: list[dict[str, Any]]) -> Iterator[PreferencePair]:
    """Hub per-image records, grouped by ``prompt_id`` in file order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for number, row in enumerate(rows, start=1):
        for key in ("prompt_id", "rank"):
            if row.get(key) is None:
                raise DatasetError(f"{reader.path}: record {number} has no {key!r}")
        groups.setdefault(str(row["prompt_id"]), []).append(row)
    for prompt_id, group in groups.items():
        where = f"{reader.path}: prompt_id {prompt_id}"
        ranks = [row["rank"] for row in group]
        _check_ranks(ranks, where)
        images = [
            image_cell(row["image"], [reader.images, folder], where) if row.get("image") is not None
            else ImageRef(path=_find(str(row.get("image_path") or ""), reader.images, folder))
            for row in group
        ]
        yield from _pairs_of(reader, prompt_id, str(group[0].get("prompt") or ""), images, ranks, group[0])


def _check_ranks(ranks: Iterable[Any], where: str) -> None:
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ranks):
        raise DatasetError(f"{where}: ranks must be numbers (got {list(ranks)!r})")


def _find(name: str, images: Path | None, folder: Path) -> str:
    """``name`` under ``--images``, ``folder`` or a folder above it; else by file name in ``folder``."""
    if not name:
        raise DatasetError(f"{folder}: a record has an empty image_path")
    relative = Path(name)
    if relative.is_absolute():
        return name
    bases = ([images] if images is not None else []) + [folder, *list(folder.parents)[:4]]
    for base in bases:
        if (base / relative).is_file():
            return str(base / relative)
    for base in ([images] if images is not None else []) + [folder]:
        if (base / relative.name).is_file():
            return str(base / relative.name)
    return str(bases[0] / relative)
