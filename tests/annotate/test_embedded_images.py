"""Images a dataset embeds are written beside the seed file with the extension of their format."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from arrpo.annotate.labels import image_suffix


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("GIF", ".gif")])
def test_suffix_follows_the_bytes(fmt, suffix):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format=fmt)
    assert image_suffix(buffer.getvalue()) == suffix
    assert image_suffix(b"not an image") == ".img"


def test_a_hub_dataset_with_embedded_images_gives_viewable_files(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from arrpo.annotate.items import read_items
    from arrpo.annotate.labels import LabelBook

    def jpeg(color):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), color).save(buffer, format="JPEG")
        return {"bytes": buffer.getvalue(), "path": "x.jpg"}

    table = pa.table({"caption": ["a red square"], "image0": [jpeg((220, 0, 0))], "image1": [jpeg((0, 0, 220))],
                      "label": [0], "category": ["c"], "subcategory": ["s"], "model": ["m"]})
    pq.write_table(table, tmp_path / "test.parquet")
    book = LabelBook(read_items(f"mjbench:{tmp_path / 'test.parquet'}"), tmp_path / "out" / "seeds.jsonl")
    try:
        pair = book.current()[1]
        book.answer(pair.id, "left")
    finally:
        book.close()
    record = json.loads((tmp_path / "out" / "seeds.jsonl").read_text())
    for key in ("image_a", "image_b"):
        path = Path(record[key])
        assert path.suffix == ".jpg" and path.parent.name == "seeds.images"
        assert Image.open(path).format == "JPEG"
