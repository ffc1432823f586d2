"""The generic layout: ``id, prompt, image_a, image_b, label[, source, task, subset]``.

Kinds ``jsonl`` and ``csv`` (a file of any table kind), and ``hf`` (a Hub dataset folder or one
parquet/Arrow file with these columns).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from arrpo.datasets._base import DatasetError, Reader, register
from arrpo.datasets._images import image_cell
from arrpo.datasets._tables import read_located_table
from arrpo.datasets.pairs import PROMPT_KEYS, Label, PreferencePair
from arrpo.schema import task_for

_LABELS: dict[str, Label] = {
    "a": "A", "b": "B", "tie": "tie", "1": "A", "2": "B", "0": "tie", "=": "tie", "image_a": "A", "image_b": "B",
}


def generic_label(value: Any, where: str) -> Label:
    label = _LABELS.get(str(value).strip().lower())
    if label is None:
        raise DatasetError(f"{where}: label must be A, B or tie (got {value!r})")
    return label


@register("jsonl", "csv", "hf", layout="generic columns id, prompt, image_a, image_b, label[, source, task, subset]")
def generic(reader: Reader) -> Iterator[PreferencePair]:
    """Generic rows from a JSON/JSONL/CSV/parquet/Arrow file or a Hub dataset folder."""
    bases = reader.bases()
    for number, (location, _part, row) in enumerate(read_located_table(reader.path, reader.options), start=1):
        where = f"{reader.path}: {location}"
        prompt = next((row[k] for k in PROMPT_KEYS if row.get(k)), None)
        if prompt is None:
            raise DatasetError(f"{where}: needs a prompt (or instruction/caption); has {sorted(row)}")
        for key in ("image_a", "image_b", "label"):
            if row.get(key) in (None, ""):
                raise DatasetError(f"{where}: missing {key!r}")
        source = row.get("source") or None
        label = generic_label(row["label"], where)
        if label == "tie" and reader.options.drop_ties:
            continue
        reader.location = location  # load_dataset names it if the id is refused
        yield PreferencePair(
            id=str(row.get("id") or f"{number}"),
            task=task_for(row.get("task"), source),
            prompt=str(prompt),
            image_a=image_cell(row["image_a"], bases, f"{where} image_a"),
            image_b=image_cell(row["image_b"], bases, f"{where} image_b"),
            source=image_cell(source, bases, f"{where} source") if source else None,
            label=label,
            subset=str(row.get(reader.options.subset_field or "subset") or "all"),
        )
