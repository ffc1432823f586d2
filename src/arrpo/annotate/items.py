"""What ``arrpo label`` shows: pairs read from a pair file, an ``arrpo eval`` dataset or a folder.

Three inputs are accepted:

* a **pair file** of ``arrpo judge --pairs`` (JSONL; ``label`` optional, ignored when present
  except for the agreement shown on the finish screen), or the generic JSONL/JSON/CSV of
  ``arrpo eval`` (ties allowed);
* a **dataset spec** ``KIND:PATH`` as ``arrpo eval --dataset`` takes it (``mmrb2:t2i.json``, ...);
* a **folder of images per prompt**::

      FOLDER/
        red-bicycle/            one folder per prompt (any name)
          prompt.txt            the prompt or editing instruction (default: the folder name)
          source.png            optional: makes every pair of this folder an edit of this image
          flux.png sd3.png ...  the candidates (.png .jpg .jpeg .webp), two or more

  Every two candidates of a folder form a pair (A = the first by file name); ``pairs_per_prompt``
  keeps a seeded random choice of them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from arrpo.datasets.pairs import ImageRef, first_id_problem
from arrpo.errors import ArrpoError
from arrpo.schema import Task, task_for
from arrpo.text import valid_utf8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SOURCE_STEM = "source"
PROMPT_FILE = "prompt.txt"


class LabelInputError(ArrpoError, ValueError, kind="bad_input"):
    """The pairs to label cannot be read or their images are missing; the message says which."""


@dataclass(frozen=True)
class LabelItem:
    """One pair to label: images A and B as given by the input, an optional source image.

    ``given_label`` is the input's own label, if it had one (never shown to the annotator).
    """

    id: str
    task: Task
    prompt: str
    image_a: ImageRef
    image_b: ImageRef
    source: ImageRef | None = None
    given_label: str | None = None

    def image(self, slot: str) -> ImageRef | None:
        """The image of slot ``a``, ``b`` or ``source``."""
        return {"a": self.image_a, "b": self.image_b, "source": self.source}.get(slot)


def read_items(
    spec: str | Path, *, images: str | Path | None = None, seed: int = 0,
    pairs_per_prompt: int | None = None, check_files: bool = True,
) -> list[LabelItem]:
    """Read the pairs to label from a pair file, a ``KIND:PATH`` dataset spec or a folder.

    Raises:
        LabelInputError: unreadable input, no pairs, duplicate ids, or image files not found.
    """
    from arrpo.datasets import ADAPTERS

    text = str(spec)
    kind, sep, rest = text.partition(":")
    if sep and kind in ADAPTERS and rest:
        items = _from_dataset(text, images)
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            items = _from_folder(path, seed=seed, pairs_per_prompt=pairs_per_prompt)
        elif path.is_file():
            items = _from_pair_file(path, images)
        else:
            raise LabelInputError(f"{path}: no such file or folder")
    if not items:
        raise LabelInputError(f"{spec}: no pairs to label")
    # text no UTF-8 writer can encode (a lone surrogate in a JSON file, a folder name that is not
    # UTF-8) would break every page answer and the seed file: shown and stored as U+FFFD
    items = [replace(it, id=valid_utf8(it.id), prompt=valid_utf8(it.prompt)) for it in items]
    _check_unique(spec, items)
    if check_files:
        _check_files(spec, items)
    return items


def _from_dataset(spec: str, images: str | Path | None) -> list[LabelItem]:
    from arrpo.datasets import DatasetError, load_pairs

    try:
        pairs = load_pairs(spec, images)
    except (DatasetError, OSError, ValueError) as exc:
        raise LabelInputError(str(exc)) from exc
    return [
        LabelItem(id=p.id, task=p.task, prompt=p.prompt, image_a=p.image_a, image_b=p.image_b,
                  source=p.source, given_label=p.label)
        for p in pairs
    ]


def _from_pair_file(path: Path, images: str | Path | None) -> list[LabelItem]:
    """The ``arrpo judge`` pair file first (labels optional); else the generic ``arrpo eval`` file."""
    from arrpo.datasets.pairs import PairFileError, read_pairs

    root = Path(images).expanduser() if images is not None else path.parent
    if path.suffix.lower() == ".jsonl":
        try:
            records = list(read_pairs(path))
        except (PairFileError, UnicodeDecodeError) as exc:
            try:  # e.g. a tie label, which the judge's pair file does not know
                return _from_dataset(f"jsonl:{path}", images)
            except LabelInputError:
                raise LabelInputError(str(exc)) from exc
        return [
            LabelItem(id=r.id, task=r.resolved_task(), prompt=r.prompt, image_a=_ref(r.image_a, root),
                      image_b=_ref(r.image_b, root), source=_ref(r.source, root) if r.source else None,
                      given_label=r.label)
            for r in records
        ]
    kind = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    return _from_dataset(f"{kind}:{path}", images)


def _ref(name: str, root: Path) -> ImageRef:
    path = Path(name).expanduser()
    return ImageRef(path=str(path if path.is_absolute() else root / path))


def _candidates(folder: Path) -> tuple[list[Path], Path | None]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    source = next((p for p in files if p.stem == SOURCE_STEM), None)
    return [p for p in files if p != source], source


def _from_folder(root: Path, *, seed: int, pairs_per_prompt: int | None) -> list[LabelItem]:
    items: list[LabelItem] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise LabelInputError(
            f"{root}: no prompt folders; expected {root}/<prompt>/{{{PROMPT_FILE}, two or more images}}"
        )
    for folder in folders:
        candidates, source = _candidates(folder)
        if len(candidates) < 2:
            continue
        prompt_file = folder / PROMPT_FILE
        try:
            prompt = prompt_file.read_text(encoding="utf-8").strip() if prompt_file.is_file() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise LabelInputError(f"{prompt_file}: cannot read ({exc})") from exc
        prompt = prompt or folder.name.replace("_", " ").replace("-", " ")
        couples = list(itertools.combinations(candidates, 2))
        if pairs_per_prompt is not None and pairs_per_prompt < len(couples):
            chosen = set(random.Random(f"{seed}:{folder.name}").sample(range(len(couples)), pairs_per_prompt))
            couples = [c for i, c in enumerate(couples) if i in chosen]
        for first, second in couples:
            items.append(LabelItem(
                id=f"{folder.name}/{first.name}|{second.name}", task=task_for(None, source),
                prompt=prompt, image_a=ImageRef(path=str(first)), image_b=ImageRef(path=str(second)),
                source=ImageRef(path=str(source)) if source else None,
            ))
    if not items:
        raise LabelInputError(f"{root}: no prompt folder holds two or more images ({', '.join(IMAGE_SUFFIXES)})")
    return items


def _check_unique(spec: object, items: Iterable[LabelItem]) -> None:
    problem = first_id_problem(item.id for item in items)
    if problem is not None:
        raise LabelInputError(f"{spec}: {problem}")


def _check_files(spec: object, items: list[LabelItem]) -> None:
    missing = [
        f"{item.id}: {ref.path}"
        for item in items
        for ref in (item.image_a, item.image_b, item.source)
        if ref is not None and ref.data is None and not (ref.path and Path(ref.path).is_file())
    ]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise LabelInputError(f"{spec}: image files not found: {'; '.join(missing[:3])}{more}")
