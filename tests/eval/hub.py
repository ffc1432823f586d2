"""Write tables the way the Hugging Face Hub stores them: parquet shards (or ``save_to_disk``
Arrow streams) whose image columns are structs ``{bytes, path}``, with the ``huggingface``
schema metadata naming them ``Image`` features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def hub_table(rows: list[dict[str, Any]], image_columns: tuple[str, ...] = ()):
    import pyarrow as pa

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    first = rows[0]
    fields = []
    for name in first:
        if name in image_columns:
            fields.append(pa.field(name, image_type))
        else:
            fields.append(pa.field(name, pa.array([r.get(name) for r in rows]).type))
    features = {name: ({"_type": "Image"} if name in image_columns else {"dtype": str(f.type), "_type": "Value"})
                for name, f in zip(first, fields, strict=True)}
    schema = pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features}})})
    return pa.Table.from_pylist(rows, schema=schema)


def write_parquet(path: Path, rows: list[dict[str, Any]], image_columns: tuple[str, ...] = ()) -> Path:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(hub_table(rows, image_columns), path)
    return path


def write_arrow_stream(path: Path, rows: list[dict[str, Any]], image_columns: tuple[str, ...] = ()) -> Path:
    import pyarrow as pa

    path.parent.mkdir(parents=True, exist_ok=True)
    table = hub_table(rows, image_columns)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return path
