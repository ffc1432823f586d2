"""TIGER EditReward-Bench rows: ``id, instruction, source_image, candidate_1, candidate_2, ranking,
comparison_type, dataset``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from arrpo.datasets._base import DatasetError, Reader, register
from arrpo.datasets._images import image_cell
from arrpo.datasets._tables import read_table
from arrpo.datasets.pairs import Label, PreferencePair

_COMPARISON_TYPE = re.compile(r"\s*([A-Za-z])\s*_?\s*vs\.?\s*_?\s*([A-Za-z])\s*", re.I)


def editreward_label(ranking: Any, comparison_type: Any, where: str) -> Label:
    """The label of one row: ``comparison_type`` ``XvsY`` makes ``candidate_1`` X (upstream's
    "Left") and ``candidate_2`` Y, so ``X>Y`` is A, ``Y>X`` is B, ``X=Y`` a tie. K=2 rows compare A with B.
    """
    match = _COMPARISON_TYPE.fullmatch(str(comparison_type)) if comparison_type else None
    first, second = (match.group(1).upper(), match.group(2).upper()) if match else ("A", "B")
    text = str(ranking or "").replace(" ", "").upper()
    labels: dict[str, Label] = {f"{first}>{second}": "A", f"{second}>{first}": "B",
                                f"{first}={second}": "tie", f"{second}={first}": "tie"}
    if text not in labels:
        raise DatasetError(f"{where}: ranking {ranking!r} does not compare {first} with {second} "
                           f"(comparison_type {comparison_type!r})")
    return labels[text]


@register("editreward", layout="EditReward-Bench rows (JSON/JSONL export, parquet file or Hub folder)")
def editreward(reader: Reader) -> Iterator[PreferencePair]:
    """``dataset`` is the group size (``2pair``, ``3pair``, ``4pair``). Only K=2 rows are read unless
    ``all_groups``; then every row of the 3- and 4-candidate groups is one pair too. ``A=B`` is a
    tie, kept unless ``drop_ties``. Subset: ``subset_field``, else the group size.
    """
    bases = reader.bases()
    for number, (_, row) in enumerate(read_table(reader.path, reader.options), start=1):
        where = f"{reader.path}: row {number}"
        group = row.get("dataset")
        if group not in (None, "2pair") and not reader.options.all_groups:
            continue
        label = editreward_label(row.get("ranking"), row.get("comparison_type"), where)
        if label == "tie" and reader.options.drop_ties:
            continue
        pair_id = str(row.get("id") if row.get("id") is not None else number)
        meta = {k: row.get(k) for k in ("model_1", "model_2", "score_1", "score_2", "dataset", "comparison_type")
                if k in row}
        meta["group"] = pair_id.split("_")[0]
        yield PreferencePair(
            id=pair_id,
            task="edit",
            prompt=str(row.get("instruction") or ""),
            image_a=image_cell(row.get("candidate_1"), bases, f"{where} candidate_1"),
            image_b=image_cell(row.get("candidate_2"), bases, f"{where} candidate_2"),
            source=image_cell(row.get("source_image"), bases, f"{where} source_image"),
            label=label,
            subset=reader.subset(row, str(group or "editreward")),
            meta=meta,
        )
