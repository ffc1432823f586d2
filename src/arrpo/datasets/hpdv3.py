"""HPDv3 test pairs: ``prompt, path1 (preferred), path2[, model1, model2, confidence, choice_dist]``."""

from __future__ import annotations

from collections.abc import Iterator

from arrpo.datasets._base import DatasetError, Reader, register, short_hash
from arrpo.datasets._files import read_json_records
from arrpo.datasets._images import resolve_path
from arrpo.datasets.pairs import ImageRef, PreferencePair


@register("hpdv3", layout="HPDv3 test.json (prompt, path1 preferred, path2, model1, model2, confidence)")
def hpdv3(reader: Reader) -> Iterator[PreferencePair]:
    """``path1`` is always the preferred image, so A/B is randomised by default."""
    path, bases = reader.path, reader.bases()
    records = read_json_records(path, wanted="HPDv3's test.json", fix="Pass the test.json of the HPDv3 release.")
    for number, item in enumerate(records, start=1):
        where = f"{path}: record {number}"
        for key in ("prompt", "path1", "path2"):
            if not item.get(key):
                raise DatasetError(f"{where}: missing {key!r}")
        pair = PreferencePair(
            id=f"{number}-{short_hash(item['prompt'], item['path1'], item['path2'])}",
            prompt=item["prompt"],
            image_a=ImageRef(path=resolve_path(item["path1"], bases)),
            image_b=ImageRef(path=resolve_path(item["path2"], bases)),
            label="A",
            subset=reader.subset(item, "hpdv3"),
            meta={k: item.get(k) for k in ("model1", "model2", "confidence") if k in item},
        )
        yield reader.finish(pair, randomise_default=True)
