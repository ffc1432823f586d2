"""Reading one dataset file: JSON, JSON lines, CSV, parquet or Arrow, recognised by its bytes.

The extension is only a hint: a parquet file named ``.json`` is still parquet, and a file that is
none of these (a zip archive, an image, random bytes) is a :class:`DatasetError` that says what
the file is and what to pass instead, never a ``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arrpo.datasets._base import DatasetError

_MAGIC = (
    (b"PAR1", "parquet"),
    (b"ARROW1", "arrow"),
    (b"\xff\xff\xff\xff", "arrow"),  # an Arrow IPC stream (``save_to_disk`` shards)
    (b"PK\x03\x04", "zip archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"\x89PNG", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF8", "image"),
)


def sniff(path: Path) -> str:
    """What a file holds: ``parquet``, ``arrow``, ``json``, ``jsonl``, ``csv``, or a description of
    something else (``zip archive``, ``image``, ``binary data``)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the buffer's end
            return "binary data"
        text = head[: exc.start].decode("utf-8")
    if "\x00" in text:
        return "binary data"
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        return "jsonl" if path.suffix.lower() == ".jsonl" else "json"
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    return "text"


_DESCRIPTIONS = {"zip archive": "a zip archive", "gzip archive": "a gzip archive", "binary data": "binary data",
                 "image": "an image file", "arrow": "an Arrow file", "text": "a text file (not JSON)"}


def wrong_kind(path: Path, found: str, wanted: str, fix: str) -> DatasetError:
    """The error for a file of the wrong kind: what it is, what was expected, what to do."""
    what = _DESCRIPTIONS.get(found, f"a {found} file")
    if found.endswith("archive"):
        fix = f"Extract it first. {fix}"
    return DatasetError(f"{path} is {what}, not {wanted}. {fix}")


def read_json_records(path: Path, *, wanted: str = "a JSON or JSON-lines file", fix: str = "") -> list[dict[str, Any]]:
    """Records of a JSON file (a list, or an object holding a list under ``pairs``/``data``/
    ``rows``/``items``) or of a JSON-lines file. Anything else is a :class:`DatasetError`."""
    return [record for _, record in read_located_json_records(path, wanted=wanted, fix=fix)]


def read_located_json_records(path: Path, *, wanted: str = "a JSON or JSON-lines file",
                              fix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """:func:`read_json_records` with where each record is: ``line N`` of a JSON-lines file,
    ``record N`` of a JSON document."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    kind = sniff(path)
    if kind not in ("json", "jsonl"):
        raise wrong_kind(path, kind, wanted, fix or "Pass the JSON file the benchmark publishes.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start}); {wanted} is expected") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("{"):
            return _json_lines(path, text)
        raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict):
        for key in ("pairs", "data", "rows", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a list of JSON objects")
    return [(f"record {number}", record) for number, record in enumerate(data, start=1)]


def _json_lines(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object per line")
        records.append((f"line {number}", record))
    return records


def read_table_file(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of one tabular file of any supported kind (JSON, JSONL, CSV, parquet, Arrow)."""
    for _, row in read_located_table_file(path):
        yield row


def read_located_table_file(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """:func:`read_table_file` with where each row is (``line N`` of a JSON-lines file, else
    ``record N``)."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    kind = sniff(path)
    if kind in ("json", "jsonl"):
        yield from read_located_json_records(path)
    elif kind in ("parquet", "arrow", "csv"):
        rows = parquet_rows([path]) if kind == "parquet" else arrow_rows([path]) if kind == "arrow" else _csv_rows(path)
        for number, row in enumerate(rows, start=1):
            yield f"record {number}", row
    else:
        raise wrong_kind(path, kind, "a table (JSON, JSON lines, CSV, parquet or Arrow)",
                         "Extract archives first and pass the dataset file or folder inside.")


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    yield from csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")


def _pyarrow(what: str) -> Any:
    try:
        import pyarrow  # type: ignore[import-not-found]
        import pyarrow.parquet  # type: ignore[import-not-found]
    except ImportError:
        raise DatasetError(
            f"{what}: reading parquet/Arrow data needs 'pyarrow', which is not installed. Install it "
            "(pip install pyarrow, or pip install 'arrpo[hf]'), or export the rows to JSONL with image "
            "columns as file paths and pass that file instead."
        ) from None
    return pyarrow


def parquet_rows(files: list[Path]) -> Iterator[dict[str, Any]]:
    pa = _pyarrow(str(files[0]) if files else "parquet")
    for file in files:
        try:
            parquet = pa.parquet.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"{file}: not a readable parquet file ({exc})") from None
        for batch in parquet.iter_batches(batch_size=64):
            yield from batch.to_pylist()


def arrow_rows(files: list[Path]) -> Iterator[dict[str, Any]]:
    pa = _pyarrow(str(files[0]) if files else "arrow")
    for file in files:
        with pa.memory_map(str(file)) as source:
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                try:
                    reader = pa.ipc.open_file(source)
                except pa.ArrowInvalid as exc:
                    raise DatasetError(f"{file}: not a readable Arrow file ({exc})") from None
            for batch in reader:
                yield from batch.to_pylist()
