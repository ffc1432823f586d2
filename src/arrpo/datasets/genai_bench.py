"""GenAI-Bench (GenAI-Arena votes), ``image_generation`` and ``image_edition`` rows.

On the Hub (TIGER-Lab/GenAI-Bench) each configuration is a folder with one file per split:
``image_edition/test-00000-of-00001.parquet`` and ``image_edition/test_v1-00000-of-00001.parquet``
(likewise ``image_generation``, ``video_generation``). Choose with ``config=`` and ``split=``.
"""

from __future__ import annotations

from collections.abc import Iterator

from arrpo.datasets._base import DatasetError, Reader, register
from arrpo.datasets._images import image_cell
from arrpo.datasets._tables import TablePart, read_table, reads_several_parts
from arrpo.datasets.pairs import Label, PreferencePair

_VOTES: dict[str, Label] = {"leftvote": "A", "rightvote": "B", "tievote": "tie", "bothbad_vote": "tie"}


@register("genai-bench", layout="GenAI-Bench Hub folder (<config>/<split>-*.parquet), one parquet file, or a JSON/JSONL export")
def genai_bench(reader: Reader) -> Iterator[PreferencePair]:
    """Generation: ``prompt, left_image, right_image, vote_type``; edition: ``instruct_prompt,
    source_image, left_output_image, right_output_image, vote_type``. ``leftvote``/``rightvote`` give
    A/B; ``tievote`` and ``bothbad_vote`` are ties (kept unless ``drop_ties``).
    """
    bases = reader.bases()
    counters: dict[TablePart, int] = {}
    for part, row in read_table(reader.path, reader.options):
        index = counters[part] = counters.get(part, -1) + 1
        where = f"{reader.path}{f' [{part.name()}]' if part.split or part.config else ''}: row {index + 1}"
        label = _VOTES.get(str(row.get("vote_type")))
        if label is None:
            raise DatasetError(f"{where}: vote_type must be one of {sorted(_VOTES)} (got {row.get('vote_type')!r})")
        if label == "tie" and reader.options.drop_ties:
            continue
        edit = "left_output_image" in row
        if edit:
            task, prompt = "image_edition", row.get("instruct_prompt") or ""
            a, b = row.get("left_output_image"), row.get("right_output_image")
        elif "left_image" in row:
            task, prompt = "image_generation", row.get("prompt") or ""
            a, b = row.get("left_image"), row.get("right_image")
        else:
            raise DatasetError(f"{where}: no image columns (left_image/right_image or left_output_image/"
                               f"right_output_image); has {sorted(row)}. Only the image configurations are supported.")
        if row.get("id") is not None:
            pair_id = str(row["id"])
        else:
            pair_id = f"{task}-{index}"
            if reads_several_parts(reader.options):
                pair_id = f"{part.name()}/{pair_id}"
        yield PreferencePair(
            id=pair_id,
            task="edit" if edit else "t2i",
            prompt=str(prompt),
            image_a=image_cell(a, bases, f"{where} left image"),
            image_b=image_cell(b, bases, f"{where} right image"),
            source=image_cell(row.get("source_image"), bases, f"{where} source_image") if edit else None,
            label=label,
            subset=reader.subset(row, task),
            meta={k: row.get(k) for k in ("vote_type", "left_model", "right_model") if k in row},
        )
