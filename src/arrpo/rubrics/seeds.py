"""Labelled seed pairs for rubric learning, read from the three formats people have.

1. **Project JSONL** (the pair file of :mod:`arrpo.pairs` with ``label`` required)::

       {"id": "p1", "prompt": "a red bicycle", "image_a": "a.png", "image_b": "b.png", "label": "A"}
       {"id": "e1", "task": "edit", "prompt": "make the sky pink", "source": "s.png",
        "image_a": "e1.png", "image_b": "e2.png", "label": "B"}

2. **The authors' seed JSON** (a list): prompt under ``query``/``prompt``/``instruction``,
   candidates under ``response`` (or ``responses``/``images``/``image_paths``/``generated_images``;
   for edits also ``edited_images``/``target_images``/``output_images``/``result_images``),
   ``label_rank`` (smaller is better, aligned with the candidates) and, for edits,
   ``source_image`` (or ``base_image``/``original_image``/``input_image``/``reference_image``).
   Items with more than two ranked candidates become one pair per differently-ranked couple.

3. **MJ-Bench caption JSON** (a list of ``{"caption", "image_0", "image_1", "label_0"}``). Its
   ``label_0`` is 1 for every pair, so which image becomes A is decided by a coin seeded with the
   pair's content (deterministic, about half each way).

Relative image paths are resolved against ``images_root`` (default: the seed file's folder); the
authors' format also falls back to the working directory, as their scripts did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from arrpo.errors import ArrpoError
from arrpo.images import ImageData, load_image
from arrpo.rubric import Rubric
from arrpo.schema import Comparison, Task

SeedFormat = Literal["auto", "jsonl", "authors", "mjbench"]
Side = Literal["A", "B"]

_PROMPT_KEYS = ("query", "prompt", "instruction", "caption")
_T2I_IMAGE_KEYS = ("response", "responses", "images", "image_paths", "generated_images")
_EDIT_IMAGE_KEYS = ("edited_images", "target_images", "output_images", "result_images", *_T2I_IMAGE_KEYS)
_SOURCE_KEYS = ("source_image", "base_image", "original_image", "input_image", "reference_image")


class SeedFileError(ArrpoError, ValueError, kind="bad_input"):
    """A seed file cannot be used; the message names the file and the item."""


class SeedPair(BaseModel):
    """One labelled pair: images A and B (paths), an optional source image, and the preferred side.

    :meth:`comparison` is the only way images reach a verifier, and it carries no label.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    task: Task
    prompt: str
    image_a: Path
    image_b: Path
    source: Path | None = None
    preferred: Side

    def load(self, max_pixels: int | None = None) -> LoadedPair:
        """Read and validate the images (raises :class:`~arrpo.images.ImageError`)."""
        return LoadedPair(
            pair=self,
            image_a=load_image(self.image_a, max_pixels=max_pixels),
            image_b=load_image(self.image_b, max_pixels=max_pixels),
            source=load_image(self.source, max_pixels=max_pixels) if self.source else None,
        )


@dataclass(frozen=True)
class LoadedPair:
    """A seed pair with its images in memory."""

    pair: SeedPair
    image_a: ImageData
    image_b: ImageData
    source: ImageData | None

    @property
    def preferred_image(self) -> ImageData:
        return self.image_a if self.pair.preferred == "A" else self.image_b

    @property
    def other_image(self) -> ImageData:
        return self.image_b if self.pair.preferred == "A" else self.image_a

    def comparison(self, rubric: Rubric) -> Comparison:
        """The pair as an unlabelled comparison under ``rubric`` (what the verifier sees)."""
        return Comparison(
            task=self.pair.task,
            prompt=self.pair.prompt,
            image_a=self.image_a,
            image_b=self.image_b,
            source=self.source,
            rubric=rubric,
        )


@dataclass
class SeedSet:
    """The pairs of one seed file, its content hash, its format and what was skipped and why."""

    pairs: list[SeedPair]
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
            the file (JSONL ``task``/``source``, authors' ``source_image``), else ``t2i``.
        format: ``auto`` (``.jsonl`` → project, JSON list → by its keys) or a named format.
        images_root: folder for relative image paths (default: the seed file's folder).
        seed: salt of the MJ-Bench A/B coin.
        check_files: fail early when an image file does not exist.

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
    fmt = format if format != "auto" else _detect_format(path, raw)
    if fmt == "jsonl":
        pairs, skipped = _read_project_jsonl(path, root, task)
    else:
        items = _json_list(path, raw)
        if fmt == "authors":
            pairs, skipped = _read_authors(path, items, root, task)
        elif fmt == "mjbench":
            pairs, skipped = _read_mjbench(path, items, root, task, seed)
        else:
            raise SeedFileError(f"{path}: unknown seed format {fmt!r} (jsonl, authors, mjbench)")
    if not pairs:
        raise SeedFileError(f"{path}: no usable labelled pairs" + (f" ({skipped[0]})" if skipped else ""))
    _check_unique_ids(path, pairs)
    if check_files:
        _check_files(path, pairs)
    return SeedSet(pairs=pairs, sha256=sha, format=fmt, path=path, skipped=skipped)


def _detect_format(path: Path, raw: bytes) -> str:
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    items = _json_list(path, raw)
    first = next((item for item in items if isinstance(item, dict)), {})
    if "image_0" in first and "label_0" in first:
        return "mjbench"
    if "label_rank" in first:
        return "authors"
    if "image_a" in first and "label" in first:
        return "jsonl"
    raise SeedFileError(
        f"{path}: cannot tell the seed format from keys {sorted(first)}; expected project JSONL "
        "(image_a, image_b, label), the authors' JSON (query, response, label_rank) or MJ-Bench "
        "(caption, image_0, image_1, label_0). Pass the format explicitly."
    )


def _json_list(path: Path, raw: bytes) -> list[Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        # a .json file holding JSON lines is common enough to accept
        try:
            return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SeedFileError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        data = data.get("data") or data.get("pairs") or data.get("items")
    if not isinstance(data, list):
        raise SeedFileError(f"{path}: expected a JSON list of pairs")
    return data


def _resolve(name: Any, root: Path, *, cwd_fallback: bool = False) -> Path:
    candidate = Path(str(name)).expanduser()
    if candidate.is_absolute():
        return candidate
    resolved = root / candidate
    if cwd_fallback and not resolved.exists() and candidate.exists():
        return candidate.resolve()
    return resolved


def _check_task(path: Path, where: str, found: Task, wanted: Task | None) -> Task:
    if wanted is not None and found != wanted:
        raise SeedFileError(f"{path}: {where} is a {found!r} pair but the task is {wanted!r}")
    return found


def _read_project_jsonl(path: Path, root: Path, task: Task | None) -> tuple[list[SeedPair], list[str]]:
    from arrpo.pairs import PairFileError, read_pairs

    pairs: list[SeedPair] = []
    try:
        for record in read_pairs(path):
            if record.label is None:
                raise SeedFileError(f"{path}: pair {record.id!r} has no 'label' (\"A\" or \"B\")")
            pair_task = _check_task(path, f"pair {record.id!r}", record.resolved_task(), task)
            if pair_task == "edit" and not record.source:
                raise SeedFileError(f"{path}: edit pair {record.id!r} has no 'source' image")
            pairs.append(
                SeedPair(
                    id=record.id, task=pair_task, prompt=record.prompt,
                    image_a=_resolve(record.image_a, root), image_b=_resolve(record.image_b, root),
                    source=_resolve(record.source, root) if record.source else None,
                    preferred=record.label,
                )
            )
    except PairFileError as exc:
        raise SeedFileError(str(exc)) from exc
    return pairs, []


def _first(item: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = item.get(key)
        if value not in (None, "", []):
            return value
    return None


def _read_authors(
    path: Path, items: list[Any], root: Path, task: Task | None
) -> tuple[list[SeedPair], list[str]]:
    pairs: list[SeedPair] = []
    skipped: list[str] = []
    for index, item in enumerate(items):
        where = f"item {index}"
        if not isinstance(item, dict):
            raise SeedFileError(f"{path}: {where} is not an object")
        base_id = str(item.get("id", f"item-{index}"))
        prompt = _first(item, _PROMPT_KEYS)
        if not isinstance(prompt, str) or not prompt.strip():
            raise SeedFileError(f"{path}: {where} has no prompt ('query', 'prompt' or 'instruction')")
        ranks = item.get("label_rank")
        source = _first(item, _SOURCE_KEYS)
        is_edit = task == "edit" or (task is None and source is not None)
        images = _first(item, _EDIT_IMAGE_KEYS if is_edit else _T2I_IMAGE_KEYS)
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not isinstance(ranks, list):
            raise SeedFileError(f"{path}: {where} needs an image list and a 'label_rank' list")
        if is_edit and source is None and len(images) == len(ranks) + 1:
            source, images = images[0], images[1:]  # the old layout: [base, edit 1, edit 2, ...]
        if is_edit and source is None:
            raise SeedFileError(f"{path}: {where} is an edit item without 'source_image'")
        if len(images) != len(ranks):
            raise SeedFileError(f"{path}: {where} has {len(images)} images but {len(ranks)} ranks")
        if not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ranks):
            raise SeedFileError(f"{path}: {where} has non-numeric ranks {ranks!r}")
        pair_task: Task = _check_task(path, where, "edit" if is_edit else "t2i", task)
        for i in range(len(images)):
            for j in range(i + 1, len(images)):
                if ranks[i] == ranks[j]:
                    skipped.append(f"{base_id}: candidates {i} and {j} share rank {ranks[i]}")
                    continue
                pairs.append(
                    SeedPair(
                        id=base_id if len(images) == 2 else f"{base_id}:{i}-{j}",
                        task=pair_task, prompt=prompt.strip(),
                        image_a=_resolve(images[i], root, cwd_fallback=True),
                        image_b=_resolve(images[j], root, cwd_fallback=True),
                        source=_resolve(source, root, cwd_fallback=True) if source else None,
                        preferred="A" if ranks[i] < ranks[j] else "B",
                    )
                )
    return pairs, skipped


def mjbench_coin(caption: str, image_0: str, image_1: str, seed: int = 0) -> bool:
    """Whether MJ-Bench's ``image_0`` is shown as B (True) or A (False): a seeded content coin."""
    digest = hashlib.sha256(f"{seed}\x00{caption}\x00{image_0}\x00{image_1}".encode()).digest()
    return digest[0] % 2 == 1


def _read_mjbench(
    path: Path, items: list[Any], root: Path, task: Task | None, seed: int
) -> tuple[list[SeedPair], list[str]]:
    _check_task(path, "an MJ-Bench file", "t2i", task)
    pairs: list[SeedPair] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not all(k in item for k in ("caption", "image_0", "image_1", "label_0")):
            raise SeedFileError(f"{path}: item {index} lacks caption/image_0/image_1/label_0")
        label = item["label_0"]
        if label not in (0, 1):
            raise SeedFileError(f"{path}: item {index} has label_0={label!r} (expected 0 or 1)")
        first, second = str(item["image_0"]), str(item["image_1"])
        zero_preferred = label == 1
        swap = mjbench_coin(item["caption"], first, second, seed)
        image_a, image_b = (second, first) if swap else (first, second)
        a_preferred = zero_preferred != swap
        pairs.append(
            SeedPair(
                id=str(item.get("id", f"{Path(first).stem}")), task="t2i", prompt=str(item["caption"]).strip(),
                image_a=_resolve(image_a, root), image_b=_resolve(image_b, root),
                preferred="A" if a_preferred else "B",
            )
        )
    return pairs, []


def _check_unique_ids(path: Path, pairs: list[SeedPair]) -> None:
    seen: set[str] = set()
    for pair in pairs:
        if pair.id in seen:
            raise SeedFileError(f"{path}: duplicate pair id {pair.id!r} (ids must be unique to resume)")
        seen.add(pair.id)


def _check_files(path: Path, pairs: list[SeedPair]) -> None:
    missing = [
        f"{pair.id}: {image}"
        for pair in pairs
        for image in (pair.image_a, pair.image_b, pair.source)
        if image is not None and not image.is_file()
    ]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise SeedFileError(f"{path}: image files not found: {'; '.join(missing[:3])}{more}")
