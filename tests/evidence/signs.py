"""A small labelled dataset of generated signs for the OCR evidence tests of ``arrpo eval``, the
report and ``arrpo review``: each pair is the requested text against a typo of it (the label names
the right one), plus the issue's bad inputs — rotated text, several quoted strings, images with no
text, a tiny image against a huge one, a prompt that asks for no text. The scenes are those the
reader tests use (tests/evidence/test_ocr_reader.py, test_gather.py), so a session's reader has
read most of them already."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from arrpo.images import ImageData, load_image
from arrpo.testing.text_images import Scene, font, render_scene, typo

OPEN = Scene("OPEN LATE", size=44, canvas=(420, 200), clutter=3, seed=60)
COFFEE = Scene("FRESH COFFEE", size=44, canvas=(420, 200), clutter=3, seed=61)
ROTATED = Scene("CAFE ROSA", size=40, canvas=(360, 360), rotation=12, seed=3)
POSTER = Scene("SUMMER FEST\nJULY 4", size=40, canvas=(440, 260), seed=12)
HUGE = Scene("GRAND OPENING", size=200, canvas=(3000, 2000), jpeg_quality=90, seed=2)
BLANK = Scene(" ", canvas=(320, 200), sign=None, clutter=0)


def tiny_stop() -> ImageData:
    """A 64×22 image reading STOP (the reader's tiny-image case)."""
    tiny = Image.new("RGB", (64, 22), "white")
    ImageDraw.Draw(tiny).text((4, 2), "STOP", font=font("DejaVuSans-Bold", 15), fill="black")
    return load_image(tiny)


def sign_pairs() -> list[dict]:
    """The pairs: id, prompt, the right image, the other image, and where the right one sits."""
    return [
        {"id": "open", "prompt": 'a shop sign that says "OPEN LATE"', "right": render_scene(OPEN),
         "other": render_scene(OPEN.with_text(typo(OPEN.text, "substitution", seed=0))), "label": "A"},
        {"id": "coffee", "prompt": 'a cafe sign "FRESH COFFEE"', "right": render_scene(COFFEE),
         "other": render_scene(COFFEE.with_text(typo(COFFEE.text, "substitution", seed=1))), "label": "B"},
        {"id": "rotated", "prompt": 'a tilted cafe sign reading "CAFE ROSA"', "right": render_scene(ROTATED),
         "other": render_scene(ROTATED.with_text("CAFE RSOA")), "label": "A"},
        {"id": "poster", "prompt": 'a poster titled "SUMMER FEST" with the date "JULY 4"',
         "right": render_scene(POSTER), "other": render_scene(POSTER.with_text("SUMMER FEST\nJULY 7")), "label": "B"},
        {"id": "sizes", "prompt": 'a banner that says "GRAND OPENING"', "right": render_scene(HUGE),
         "other": tiny_stop(), "label": "B"},
        {"id": "blank", "prompt": 'a sign that says "HELLO"', "right": render_scene(BLANK),
         "other": render_scene(Scene(" ", canvas=(320, 200), sign=None, background=(200, 180, 160))), "label": "A"},
        {"id": "notext", "prompt": "a quiet street at dusk", "right": render_scene(OPEN),
         "other": render_scene(COFFEE), "label": "A"},
    ]


def write_sign_dataset(folder: Path, ids: tuple[str, ...] | None = None) -> Path:
    """``pairs.jsonl`` (the ``jsonl:`` dataset format) and its images in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for pair in sign_pairs():
        if ids is not None and pair["id"] not in ids:
            continue
        a, b = (pair["right"], pair["other"]) if pair["label"] == "A" else (pair["other"], pair["right"])
        names = {}
        for slot, image in (("a", a), ("b", b)):
            names[slot] = f"{pair['id']}_{slot}.{'jpg' if image.mime == 'image/jpeg' else 'png'}"
            (folder / names[slot]).write_bytes(image.data)
        rows.append({"id": pair["id"], "prompt": pair["prompt"], "image_a": names["a"], "image_b": names["b"],
                     "label": pair["label"]})
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
