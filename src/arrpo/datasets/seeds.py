"""Labelled seed pairs for rubric learning: a seed file in one of three formats, or any dataset.

Every format yields the project's one pair model, :class:`arrpo.datasets.pairs.PreferencePair` (``label``
A or B; :attr:`~arrpo.datasets.pairs.PreferencePair.preferred`), so learning, judging and evaluation share
it. The format of a file is told by the keys of its records, never by its extension (``.json``
and ``.jsonl`` both hold either a JSON list or JSON lines):

1. **Project pairs** (the pair file of :mod:`arrpo.datasets.pairs` with ``label`` required)::

       {"id": "p1", "prompt": "a red bicycle", "image_a": "a.png", "image_b": "b.png", "label": "A"}
       {"id": "e1", "task": "edit", "prompt": "make the sky pink", "source": "s.png",
        "image_a": "e1.png", "image_b": "e2.png", "label": "B"}

2. **The authors' seed JSON**: prompt under ``query``/``prompt``/``instruction``/``caption``;
   candidates under ``response`` (or ``responses``, ``images``, ``image_paths``,
   ``generated_images``, for edits also ``edited_images``, ``target_images``, ``output_images``,
   ``result_images``, and the singular spellings ``image``, ``generated_image``,
   ``edited_image``, ``target_image``, ``output_image``, ``result_image``); ``label_rank``
   (smaller is better, aligned with the candidates); for edits ``source_image`` (or
   ``base_image``, ``original_image``, ``input_image``, ``reference_image``, ``ref_image``).
   Items with more than two ranked candidates become one pair per differently-ranked couple. An
   item with a source image is an edit: under ``task="t2i"`` it is refused at load
   (:class:`SeedFileError`), before any model is called.

3. **MJ-Bench caption JSON** (``caption, image_0, image_1, label_0``, or the Hub's ``image0,
   image1, label``), read by the ``mjbench`` dataset adapter: same ids, same A/B coin
   (:func:`arrpo.datasets.pairs.randomise_ab` with ``seed``) as ``arrpo eval`` uses.

:func:`read_seed_dataset` takes any ``KIND:PATH`` dataset spec of ``arrpo eval`` instead
(``arrpo rubric learn --dataset KIND:PATH``); its ties are left out (reported in ``skipped``).

Relative image paths are resolved against ``images_root`` (default: the seed file's folder); the
authors' format also falls back to the working directory, as their scripts did. Every image is
checked (exists; embedded bytes decode) at load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from arrpo.datasets.pairs import (
    PROMPT_KEYS,
    ImageRef,
    LoadedPair,
    PairRecord,
    PreferencePair,
    first_id_problem,
)
from arrpo.errors import ArrpoError, describe_validation_error
from arrpo.schema import Task, task_source_problem
from arrpo.vocab import SeedFormat

__all__ = ["LoadedPair", "SeedFileError", "SeedSet", "read_seed_dataset", "read_seeds"]

_PROMPT_KEYS = ("query", *PROMPT_KEYS)
_T2I_IMAGE_KEYS = ("response", "responses", "images", "image_paths", "generated_images", "image", "generated_image")
_EDIT_ONLY_IMAGE_KEYS = ("edited_images", "target_images", "output_images", "result_images",
                         "edited_image", "target_image", "output_image", "result_image")
_EDIT_IMAGE_KEYS = (*_EDIT_ONLY_IMAGE_KEYS, *_T2I_IMAGE_KEYS)
_SOURCE_KEYS = ("source_image", "base_image", "original_image", "input_image", "reference_image", "ref_image")


class SeedFileError(ArrpoError, ValueError, kind="bad_input"):
    """A seed file cannot be used; the message names the file and the item."""


@dataclass
class SeedSet:
    """The pairs of one seed file (or dataset), its content hash, its format and what was skipped and why."""

    pairs: list[PreferencePair]
    sha256: str
    format: str
    path: Path | None = None
    skipped: list[str] = field(default_factory=list)


def read_seeds(
    path: str | Path,
    *,
    task: Task | None = None,
    format: SeedFormat = "auto",
    images_root: str | Path | None = None,
    seed: int = 0,
    check_files: bool = True,
) -> SeedSet:
    """Read a seed file in any supported format.

    Args:
        task: the task of the rubric; pairs of the other task are an error. ``None``: taken from
            the file (``task``/``source``, the authors' source image), else ``t2i``.
        format: ``auto`` (by the keys of the first record) or a named format.
        images_root: folder for relative image paths (default: the seed file's folder).
        seed: salt of the MJ-Bench A/B coin (the same coin ``arrpo eval`` uses).
        check_files: fail early when an image file does not exist or embedded bytes do not decode.

    Raises:
        SeedFileError: unreadable file, unknown format, missing fields or images, no pairs.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SeedFileError(f"{path}: cannot read seed file ({exc.strerror or exc})") from exc
    sha = hashlib.sha256(raw).hexdigest()
    root = Path(images_root) if images_root is not None else path.parent
    items = _records(path, raw)
    fmt = format if format != "auto" else _detect_format(path, items)
    if fmt == "jsonl":
        pairs, skipped = _read_project(path, items, root, task), []
    elif fmt == "authors":
        pairs, skipped = _read_authors(path, items, root, task)
    elif fmt == "mjbench":
        pairs, skipped = _read_mjbench(path, images_root, task, seed)
    else:
        raise SeedFileError(f"{path}: unknown seed format {fmt!r} (jsonl, authors, mjbench)")
    return _finish(path, pairs, sha, fmt, skipped, check_files)


def read_seed_dataset(
    spec: str,
    *,
    task: Task | None = None,
    images_root: str | Path | None = None,
    options: dict[str, Any] | None = None,
    seed: int = 0,
) -> SeedSet:
    """Seed pairs from any ``KIND:PATH`` dataset of ``arrpo eval`` (e.g. ``mjbench:artifacts``,
    ``genai-bench:GenAI-Bench`` with ``options={"config": ..., "split": ...}``).

    Ties are left out (listed in ``skipped``); pairs of another task than ``task`` are an error.
    The content hash covers every pair's id, label, prompt and images.
    """
    from arrpo.datasets import DatasetError, load_dataset

    merged = {"seed": seed, **(options or {})}
    try:
        loaded = load_dataset(spec, images_root, merged)
    except DatasetError as exc:
        raise SeedFileError(str(exc)) from None
    skipped = list(loaded.notes)
    pairs: list[PreferencePair] = []
    for pair in loaded.pairs:
        if pair.label == "tie":
            skipped.append(f"{pair.id}: a tie (no preferred image)")
            continue
        _check_task(loaded.path, f"pair {pair.id!r}", pair.task, task)
        pairs.append(pair)
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps([pair.id, pair.task, pair.prompt, pair.label,
                                  *(ref.fingerprint() for ref in pair.images())]).encode())
    return _finish(loaded.path, pairs, digest.hexdigest(), f"dataset:{loaded.kind}", skipped, False,
                   ids_checked=True)


def _finish(path: Path, pairs: list[PreferencePair], sha: str, fmt: str, skipped: list[str],
            check_files: bool, *, ids_checked: bool = False) -> SeedSet:
    if not pairs:
        raise SeedFileError(f"{path}: no usable labelled pairs" + (f" ({skipped[0]})" if skipped else ""))
    if not ids_checked:  # datasets are checked by load_dataset
        _check_unique_ids(path, pairs)
    if check_files:
        _check_files(path, pairs)
    return SeedSet(pairs=pairs, sha256=sha, format=fmt, path=path, skipped=skipped)


# ------------------------------------------------------------------------------ reading records
def _records(path: Path, raw: bytes) -> list[tuple[str, Any]]:
    """(where, record) of a JSON list/object or of JSON lines, whatever the extension."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SeedFileError(f"{path}: not a text file (a seed file is JSON or JSON lines)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise SeedFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        return records
    if isinstance(data, dict):
        inner = data.get("data") or data.get("pairs") or data.get("items")
        data = inner if isinstance(inner, list) else [data]
    if not isinstance(data, list):
        raise SeedFileError(f"{path}: expected a JSON list of pairs (or JSON lines)")
    return [(f"{path}: item {index}", item) for index, item in enumerate(data)]


def _detect_format(path: Path, items: list[tuple[str, Any]]) -> str:
    first = next((item for _, item in items if isinstance(item, dict)), {})
    if ("image_0" in first and "label_0" in first) or ("image0" in first and "label" in first):
        return "mjbench"
    if "label_rank" in first:
        return "authors"
    if "image_a" in first or "image_b" in first:
        return "jsonl"
    raise SeedFileError(
        f"{path}: cannot tell the seed format from keys {sorted(first)}; expected project pairs "
        "(image_a, image_b, label), the authors' JSON (query, response, label_rank) or MJ-Bench "
        "(caption, image_0, image_1, label_0). Pass the format explicitly."
    )


def _resolve(name: Any, root: Path, *, cwd_fallback: bool = False) -> ImageRef:
    candidate = Path(str(name)).expanduser()
    if candidate.is_absolute():
        return ImageRef(path=str(candidate))
    resolved = root / candidate
    if cwd_fallback and not resolved.exists() and candidate.exists():
        return ImageRef(path=str(candidate.resolve()))
    return ImageRef(path=str(resolved))


def _check_task(path: Path, where: str, found: Task, wanted: Task | None) -> Task:
    if wanted is not None and found != wanted:
        raise SeedFileError(f"{path}: {where} is a {found!r} pair but the task is {wanted!r}")
    return found


def _read_project(path: Path, items: list[tuple[str, Any]], root: Path, task: Task | None) -> list[PreferencePair]:
    pairs: list[PreferencePair] = []
    for number, (where, item) in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise SeedFileError(f"{where}: not a JSON object")
        data = dict(item)
        data.setdefault("id", f"line-{where.rsplit(':', 1)[-1]}" if where.startswith(f"{path}:") else f"item-{number - 1}")
        data["id"] = str(data["id"])
        try:
            record = PairRecord.model_validate(data)
        except ValidationError as exc:
            raise SeedFileError(f"{where}: {describe_validation_error(exc, whole='line')}") from None
        if record.label is None:
            raise SeedFileError(f"{path}: pair {record.id!r} has no 'label' (\"A\" or \"B\")")
        pair_task = _check_task(path, f"pair {record.id!r}", record.resolved_task(), task)
        problem = task_source_problem(pair_task, bool(record.source))
        if problem is not None:
            raise SeedFileError(f"{path}: pair {record.id!r}: {problem}")
        pairs.append(PreferencePair(
            id=record.id, task=pair_task, prompt=record.prompt,
            image_a=_resolve(record.image_a, root), image_b=_resolve(record.image_b, root),
            source=_resolve(record.source, root) if record.source else None,
            label=record.label,
        ))
    return pairs


def _first(item: dict[str, Any], keys: Iterable[str]) -> tuple[str | None, Any]:
    for key in keys:
        value = item.get(key)
        if value not in (None, "", []):
            return key, value
    return None, None


def _read_authors(
    path: Path, items: list[tuple[str, Any]], root: Path, task: Task | None
) -> tuple[list[PreferencePair], list[str]]:
    pairs: list[PreferencePair] = []
    skipped: list[str] = []
    for index, (where, item) in enumerate(items):
        if not isinstance(item, dict):
            raise SeedFileError(f"{where} is not an object")
        base_id = str(item.get("id", f"item-{index}"))
        _, prompt = _first(item, _PROMPT_KEYS)
        if not isinstance(prompt, str) or not prompt.strip():
            raise SeedFileError(f"{where} has no prompt ('query', 'prompt' or 'instruction')")
        ranks = item.get("label_rank")
        source_key, source = _first(item, _SOURCE_KEYS)
        edit_key, _ = _first(item, _EDIT_ONLY_IMAGE_KEYS)
        if task == "t2i" and (source is not None or edit_key is not None):
            found = source_key or edit_key
            raise SeedFileError(
                f"{where} is an edit item (it has {found!r}) but the task is 't2i'. Learn an editing "
                "rubric with --task edit (the command's default is t2i), or remove the edit items.")
        is_edit = task == "edit" or (task is None and (source is not None or edit_key is not None))
        _, images = _first(item, _EDIT_IMAGE_KEYS if is_edit else _T2I_IMAGE_KEYS)
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not isinstance(ranks, list):
            raise SeedFileError(f"{where} needs an image list and a 'label_rank' list")
        if is_edit and source is None and len(images) == len(ranks) + 1:
            source, images = images[0], images[1:]  # the old layout: [base, edit 1, edit 2, ...]
        if is_edit and source is None:
            raise SeedFileError(f"{where} is an edit item without 'source_image'")
        if len(images) != len(ranks):
            raise SeedFileError(f"{where} has {len(images)} images but {len(ranks)} ranks")
        if len(images) < 2:
            raise SeedFileError(f"{where} has {len(images)} candidate image(s); a pair needs two or more")
        if not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ranks):
            raise SeedFileError(f"{where} has non-numeric ranks {ranks!r}")
        pair_task: Task = "edit" if is_edit else "t2i"
        for i in range(len(images)):
            for j in range(i + 1, len(images)):
                if ranks[i] == ranks[j]:
                    skipped.append(f"{base_id}: candidates {i} and {j} share rank {ranks[i]}")
                    continue
                pairs.append(PreferencePair(
                    id=base_id if len(images) == 2 else f"{base_id}:{i}-{j}",
                    task=pair_task, prompt=prompt.strip(),
                    image_a=_resolve(images[i], root, cwd_fallback=True),
                    image_b=_resolve(images[j], root, cwd_fallback=True),
                    source=_resolve(source, root, cwd_fallback=True) if source else None,
                    label="A" if ranks[i] < ranks[j] else "B",
                ))
    return pairs, skipped


def _read_mjbench(path: Path, images_root: str | Path | None, task: Task | None,
                  seed: int) -> tuple[list[PreferencePair], list[str]]:
    """MJ-Bench through the evaluation adapter: same ids and the same A/B coin as ``arrpo eval``."""
    from arrpo.datasets import DatasetError, load_dataset

    _check_task(path, "an MJ-Bench file", "t2i", task)
    try:
        loaded = load_dataset(f"mjbench:{path}", images_root, {"seed": seed}, check_images=False)
    except DatasetError as exc:
        raise SeedFileError(str(exc)) from None
    skipped = [f"{p.id}: a tie (no preferred image)" for p in loaded.pairs if p.label == "tie"]
    return [p for p in loaded.pairs if p.label != "tie"], loaded.notes + skipped


def _check_unique_ids(path: Path, pairs: Sequence[PreferencePair]) -> None:
    problem = first_id_problem(pair.id for pair in pairs)
    if problem is not None:
        raise SeedFileError(f"{path}: {problem}")


def _check_files(path: Path, pairs: Sequence[PreferencePair]) -> None:
    from arrpo.datasets._images import unusable_images

    problems = unusable_images(pairs)
    if problems:
        shown = [f"{pid}: {p}" for pid, found in problems.items() for p in found]
        more = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
        raise SeedFileError(
            f"{path}: image files not found or unreadable for {len(problems)} of {len(pairs)} pairs: "
            f"{'; '.join(shown[:3])}{more}. If the images live elsewhere, point --images at their folder.")
