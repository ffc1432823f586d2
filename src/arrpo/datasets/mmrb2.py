"""MMRB2 ``t2i.json`` / ``edit.json``: ``{"pairs": [...]}`` with ``chosen`` A/B."""

from __future__ import annotations

from collections.abc import Iterator

from arrpo.datasets._base import DatasetError, Reader, register
from arrpo.datasets._files import read_json_records
from arrpo.datasets._images import resolve_path
from arrpo.datasets.pairs import ImageRef, PreferencePair


@register("mmrb2", layout="MMRB2 t2i.json / edit.json ({'pairs': [...]}, chosen A/B)")
def mmrb2(reader: Reader) -> Iterator[PreferencePair]:
    """Responses are ``response_content`` lists of ``[type, value]``; the first image is used. A
    prompt with input images is an edit whose source is the first input image (``meta.input_images``
    counts them). Subset: ``prompt_source``.
    """
    path, bases = reader.path, reader.bases()
    records = read_json_records(path, wanted="MMRB2's t2i.json/edit.json",
                                fix="Pass benchmark/t2i.json or benchmark/edit.json of the MMRB2 release.")
    for number, item in enumerate(records, start=1):
        where = f"{path}: pair {number}"
        chosen = item.get("chosen") or item.get("human_preference")
        if chosen not in ("A", "B"):
            raise DatasetError(f"{where}: 'chosen' must be A or B (got {chosen!r})")
        texts, inputs = _content(item.get("prompt_content") or [])
        answer_a = _first_image(item.get("response_a") or {})
        answer_b = _first_image(item.get("response_b") or {})
        if answer_a is None or answer_b is None:
            raise DatasetError(f"{where}: a response has no image (only image responses are supported)")
        yield PreferencePair(
            id=str(item.get("id") or item.get("pair_id") or number),
            task="edit" if inputs else "t2i",
            prompt="\n".join(texts),
            image_a=ImageRef(path=resolve_path(answer_a, bases)),
            image_b=ImageRef(path=resolve_path(answer_b, bases)),
            source=ImageRef(path=resolve_path(inputs[0], bases)) if inputs else None,
            label=chosen,
            subset=reader.subset(item, str(item.get("prompt_source") or "mmrb2")),
            meta={
                "model_a": (item.get("response_a") or {}).get("model_name"),
                "model_b": (item.get("response_b") or {}).get("model_name"),
                "input_images": len(inputs),
            },
        )


def _content(parts: list) -> tuple[list[str], list[str]]:
    texts, images = [], []
    for part in parts:
        if isinstance(part, (list, tuple)) and len(part) == 2:
            kind, value = part
            (images if kind == "image" else texts).append(str(value))
    return texts, images


def _first_image(response: dict) -> str | None:
    _, images = _content(response.get("response_content") or [])
    return images[0] if images else None
