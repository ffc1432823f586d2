"""MJ-Bench preference pairs, from the GitHub repository or from the Hub.

* **GitHub** (``MJ-Bench/MJ-Bench``, ``artifacts/``): one folder per subset holding a caption file
  ``captions_<subset>.json`` — a list of ``{"caption", "image_0", "image_1", "label_0"}`` where
  ``label_0 == 1`` means ``image_0`` is preferred (it is 1 in every pair; 0 would prefer
  ``image_1``, 0.5 is a tie) — with the images in ``examples_<subset>/`` (or beside the JSON).
  ``blur_dataset`` lists ``sharp_image, motion_blur_image, defocused_blur_image`` instead: the
  sharp image is preferred over each blurred one (two pairs, subsets ``…/motion_blur`` and
  ``…/defocused_blur``). Other JSON files (``coco_humans_prompts.json``, …) are skipped and reported.
  Pass the ``artifacts`` folder, one subset folder, or one caption file.
* **Hub** (``MJ-Bench/MJ-Bench`` dataset): parquet shards with ``caption, image0, image1, label``
  (+ ``category, subcategory, model``); images embedded as ``{bytes, path}``; ``label == 0`` means
  ``image0`` is preferred (always 0), 1 would prefer ``image1``. Pass the folder (choose
  ``config=``/``split=`` when it has several) or one parquet file.

The two conventions are opposite (GitHub ``label_0`` 1 ↔ Hub ``label`` 0 for the same preference),
so a record that mixes them (``image0`` with ``label_0``, ``image_0`` with ``label``) is an error,
and so is a caption file whose every ``label_0`` is 0 (what a Hub table with ``label`` renamed to
``label_0`` looks like): never a silently flipped benchmark. The preferred image always sits in
slot 0, so A/B is randomised by default (:func:`arrpo.datasets.pairs.randomise_ab`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arrpo.datasets._base import DatasetError, Reader, register
from arrpo.datasets._files import read_json_records, sniff
from arrpo.datasets._images import image_cell, resolve_path
from arrpo.datasets._tables import read_table, table_files
from arrpo.datasets.pairs import ImageRef, Label, PreferencePair

_GITHUB = ("caption", "image_0", "image_1", "label_0")
_HUB = ("caption", "image0", "image1", "label")
_BLUR = ("sharp_image", "motion_blur_image", "defocused_blur_image")


@register("mjbench", layout="MJ-Bench: GitHub artifacts/<subset>/captions_<subset>.json (+examples_<subset>/), or Hub parquet (caption, image0, image1, label)")
def mjbench(reader: Reader) -> Iterator[PreferencePair]:
    path = reader.path
    if (path.is_dir() and table_files(path)) or (path.is_file() and sniff(path) in ("parquet", "arrow")):
        yield from _hub_rows(reader)
    else:
        yield from _github(reader)


def layout_of(record: dict[str, Any]) -> str | None:
    """``github``, ``hub``, ``blur`` or ``None`` (not an MJ-Bench pair record); raises on mixed keys."""
    has_github_images = "image_0" in record or "image_1" in record
    has_hub_images = "image0" in record or "image1" in record
    if has_hub_images and "label_0" in record:
        raise DatasetError(
            "a record has image0/image1 (Hub layout, where label 0 means image0 is preferred) but "
            "label_0 (GitHub layout, where label_0 1 means image_0 is preferred); the conventions are "
            "opposite, so a renamed column would flip every label. Keep the Hub names (label) or the "
            "GitHub names (image_0, image_1, label_0) with their own values.")
    if has_github_images and "label" in record and "label_0" not in record:
        raise DatasetError(
            "a record has image_0/image_1 (GitHub layout) but 'label' (Hub layout); the conventions "
            "are opposite (GitHub label_0 1 = image_0 preferred, Hub label 0 = image0 preferred). "
            "Use one layout's names throughout.")
    if all(k in record for k in _GITHUB):
        return "github"
    if all(k in record for k in _HUB):
        return "hub"
    if "sharp_image" in record and any(k in record for k in _BLUR[1:]):
        return "blur"
    return None


def _layout(record: dict[str, Any], where: str) -> str | None:
    try:
        return layout_of(record)
    except DatasetError as exc:
        raise DatasetError(f"{where}: {exc}") from None


def _github_label(value: Any, where: str) -> Label:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: label_0 must be 1 (image_0 preferred), 0 or 0.5 (got {value!r})") from None
    labels: dict[float, Label] = {1.0: "A", 0.0: "B", 0.5: "tie"}
    if number not in labels:
        raise DatasetError(f"{where}: label_0 must be 1 (image_0 preferred), 0 or 0.5 (got {value!r})")
    return labels[number]


def _hub_label(value: Any, where: str) -> Label:
    if value in (0, 1) and not isinstance(value, bool):
        return "A" if value == 0 else "B"
    raise DatasetError(f"{where}: label must be 0 (image0 preferred) or 1 (image1 preferred) (got {value!r})")


# ------------------------------------------------------------------------------------- GitHub
def _github(reader: Reader) -> Iterator[PreferencePair]:
    path = reader.path
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    root = path if path.is_dir() else path.parent
    if not files:
        raise DatasetError(f"{path}: no JSON caption files (captions_<subset>.json) and no parquet shards found")
    found = 0
    for file in files:
        try:
            records = read_json_records(
                file, wanted="an MJ-Bench caption JSON",
                fix="Pass the artifacts folder, a subset folder or its captions_<subset>.json, or the Hub parquet folder.")
        except DatasetError as exc:
            if path.is_file() or file.name.startswith("caption"):
                raise
            reader.notes.append(f"skipped {file.relative_to(root)}: not a caption file ({exc})")
            continue
        layout = _layout(records[0], str(file)) if records else None
        if layout is None:
            keys = sorted(records[0]) if records else []
            if path.is_file():
                raise DatasetError(f"{file}: not an MJ-Bench caption file (keys {keys}); expected {list(_GITHUB)} "
                                   f"or {list(_HUB)}")
            reader.notes.append(f"skipped {file.relative_to(root)}: not a caption file (keys {keys[:6]})")
            continue
        found += 1
        yield from _caption_file(reader, file, root, records, layout)
    if not found:
        raise DatasetError(f"{path}: none of its {len(files)} JSON files is an MJ-Bench caption file "
                           f"({'; '.join(reader.notes[:3])})")


def _image_bases(reader: Reader, folder: Path, relative: Path) -> list[Path]:
    """``--images`` (mirroring the subset folders, then flat), the caption file's folder, its
    ``examples_*``/``example_*`` folders (upstream's layout) and its other sub-folders."""
    bases: list[Path] = []
    if reader.images is not None:
        bases += [reader.images / relative, reader.images]
    subfolders = sorted((d for d in folder.iterdir() if d.is_dir()),
                        key=lambda d: (not d.name.startswith("example"), d.name))
    return [*bases, folder, *subfolders]


def _caption_file(reader: Reader, file: Path, root: Path, records: list[dict[str, Any]],
                  layout: str) -> Iterator[PreferencePair]:
    folder = file.parent
    relative = folder.relative_to(root)
    subset_name = relative.as_posix() if relative.parts else folder.name
    bases = _image_bases(reader, folder, relative)
    if layout == "github" and len(records) > 1 and all(_is_zero(r.get("label_0")) for r in records):
        raise DatasetError(
            f"{file}: every label_0 is 0 (image_1 preferred in all {len(records)} pairs). MJ-Bench's caption "
            "files have label_0 = 1 everywhere; the Hub's column 'label' is 0 when image0 is preferred. If "
            "this file was converted from the Hub, keep the names label/image0/image1 (read as the Hub layout).")
    for number, item in enumerate(records, start=1):
        where = f"{file}: item {number}"
        if _layout(item, where) != layout:
            raise DatasetError(f"{where}: keys {sorted(item)} differ from the file's {layout} layout")
        caption = str(item.get("caption") or "")
        if layout == "blur":
            yield from _blur_pairs(reader, item, subset_name, bases, caption)
            continue
        first, second = (item["image_0"], item["image_1"]) if layout == "github" else (item["image0"], item["image1"])
        label = _github_label(item["label_0"], where) if layout == "github" else _hub_label(item["label"], where)
        if label == "tie" and reader.options.drop_ties:
            continue
        pair = PreferencePair(
            id=f"{subset_name}/{Path(str(first)).stem}",
            prompt=caption,
            image_a=image_cell(first, bases, f"{where} image_0"),
            image_b=image_cell(second, bases, f"{where} image_1"),
            label=label,
            subset=reader.subset(item, subset_name),
        )
        yield reader.finish(pair, randomise_default=True)


def _is_zero(value: Any) -> bool:
    try:
        return float(value) == 0.0
    except (TypeError, ValueError):
        return False


def _blur_pairs(reader: Reader, item: dict[str, Any], subset: str, bases: list[Path],
                caption: str) -> Iterator[PreferencePair]:
    sharp = str(item["sharp_image"])
    for key in _BLUR[1:]:
        if not item.get(key):
            continue
        kind = key.removesuffix("_image")
        pair = PreferencePair(
            id=f"{subset}/{Path(sharp).stem}:{kind}",
            prompt=caption,
            image_a=ImageRef(path=resolve_path(sharp, bases)),
            image_b=ImageRef(path=resolve_path(str(item[key]), bases)),
            label="A",
            subset=reader.subset(item, f"{subset}/{kind}"),
        )
        yield reader.finish(pair, randomise_default=True)


# ----------------------------------------------------------------------------------------- Hub
def _hub_rows(reader: Reader) -> Iterator[PreferencePair]:
    bases = reader.bases()
    counters: dict[str, int] = {}
    for part, row in read_table(reader.path, reader.options):
        prefix = part.name() if (part.config or part.split) else ""
        index = counters[prefix] = counters.get(prefix, -1) + 1
        where = f"{reader.path}{f' [{prefix}]' if prefix else ''}: row {index + 1}"
        if _layout(row, where) != "hub":
            raise DatasetError(f"{where}: expected the Hub columns {list(_HUB)}; has {sorted(row)}")
        label = _hub_label(row["label"], where)
        category = "/".join(str(row[k]) for k in ("category", "subcategory") if row.get(k))
        subset = category or prefix or "mjbench"
        pair = PreferencePair(
            id=f"{prefix + '/' if prefix else ''}{index}",
            prompt=str(row.get("caption") or ""),
            image_a=image_cell(row["image0"], bases, f"{where} image0"),
            image_b=image_cell(row["image1"], bases, f"{where} image1"),
            label=label,
            subset=reader.subset(row, subset),
            meta={k: row[k] for k in ("model", "category", "subcategory") if row.get(k) is not None},
        )
        yield reader.finish(pair, randomise_default=True)
