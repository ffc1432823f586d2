"""Rendered images with known text, for the OCR evidence tests and ``benchmarks/ocr_evidence.py``.

:func:`render_scene` draws a :class:`Scene` — text on a sign over a background with optional
clutter, then rotation, blur and JPEG compression — from system fonts (DejaVu where installed,
Pillow's bundled font otherwise). :func:`typo` makes the one-character mistakes the benchmark
pits against the correct text. :func:`draw_cjk` draws a few CJK characters from straight
strokes, so CJK reading is testable on machines without a CJK font.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from arrpo.images import ImageData, load_image

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
#: Font files used by name in scenes (any that is not installed falls back to Pillow's own font).
FONTS = ("DejaVuSans-Bold", "DejaVuSerif", "DejaVuSansMono", "DejaVuSans-Oblique", "DejaVuSerif-Bold")
TypoKind = Literal["substitution", "deletion", "swap", "double"]
TYPO_KINDS: tuple[TypoKind, ...] = ("substitution", "deletion", "swap", "double")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """What to draw. ``sign`` is the colour of a panel behind the text (``None``: no panel)."""

    text: str
    font: str = "DejaVuSans-Bold"
    size: int = 56
    canvas: tuple[int, int] = (640, 384)
    ink: RGB = (20, 20, 20)
    background: RGB = (180, 200, 225)
    sign: RGB | None = (245, 245, 240)
    clutter: int = 0
    rotation: float = 0.0
    blur: float = 0.0
    jpeg_quality: int | None = None
    seed: int = 0

    def with_text(self, text: str) -> Scene:
        """The same scene (same clutter, same everything) with other text."""
        return replace(self, text=text)


@lru_cache(maxsize=64)
def font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The named font at ``size`` pixels, or Pillow's bundled font when it is not installed."""
    for folder in FONT_DIRS:
        path = folder / f"{name}.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def fonts_installed() -> list[str]:
    """Which of :data:`FONTS` are installed."""
    return [n for n in FONTS if any((d / f"{n}.ttf").is_file() for d in FONT_DIRS)]


def render_scene(scene: Scene) -> ImageData:
    """Draw ``scene`` and load it as arrpo loads any image."""
    rng = random.Random(scene.seed)
    im = Image.new("RGB", scene.canvas, scene.background)
    draw = ImageDraw.Draw(im)
    width, height = scene.canvas
    for _ in range(scene.clutter):
        _clutter_shape(draw, rng, width, height)
    face = font(scene.font, scene.size)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), scene.text, font=face, align="center")
    text_w, text_h = right - left, bottom - top
    x, y = (width - text_w) // 2 - left, (height - text_h) // 2 - top
    if scene.sign is not None:
        margin = max(12, scene.size // 3)
        draw.rectangle((x + left - margin, y + top - margin, x + right + margin, y + bottom + margin),
                       fill=scene.sign, outline=scene.ink, width=max(2, scene.size // 20))
    draw.multiline_text((x, y), scene.text, font=face, fill=scene.ink, align="center")
    if scene.rotation:
        im = im.rotate(scene.rotation, resample=Image.Resampling.BICUBIC, fillcolor=scene.background)
    if scene.blur:
        im = im.filter(ImageFilter.GaussianBlur(scene.blur))
    buffer = io.BytesIO()
    if scene.jpeg_quality is not None:
        im.save(buffer, format="JPEG", quality=scene.jpeg_quality)
    else:
        im.save(buffer, format="PNG")
    return load_image(buffer.getvalue())


def _clutter_shape(draw: ImageDraw.ImageDraw, rng: random.Random, width: int, height: int) -> None:
    colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    x0, y0 = rng.randrange(width), rng.randrange(height)
    x1, y1 = x0 + rng.randrange(10, width // 3), y0 + rng.randrange(10, height // 3)
    shape = rng.randrange(3)
    if shape == 0:
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    elif shape == 1:
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    else:
        draw.line((x0, y0, x1, y1), fill=colour, width=rng.randrange(2, 9))


def typo(text: str, kind: TypoKind, seed: int = 0) -> str:
    """``text`` with one mistake of ``kind`` at a letter chosen by ``seed``; always different
    from ``text`` once case, spaces and punctuation are ignored."""
    rng = random.Random(f"{seed}:{kind}:{text}")
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if not letters:
        raise ValueError(f"no letter to change in {text!r}")
    if kind == "swap":
        pairs = [i for i in letters if i + 1 < len(text) and text[i + 1].isalpha()
                 and text[i].lower() != text[i + 1].lower()]
        if not pairs:
            raise ValueError(f"no two different adjacent letters to swap in {text!r}")
        i = rng.choice(pairs)
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    i = rng.choice(letters)
    if kind == "deletion":
        return text[:i] + text[i + 1:]
    if kind == "double":
        return text[:i] + text[i] + text[i:]
    alphabet = [c for c in "ABCDEFGHJKLMNPRSTUVWXYZ" if c != text[i].upper()]
    new = rng.choice(alphabet)
    return text[:i] + (new if text[i].isupper() else new.lower()) + text[i + 1:]


#: Strokes of a few CJK characters on a unit square: lines (x0, y0, x1, y1) and boxes (x0, y0, x1, y1).
_CJK_STROKES: dict[str, tuple[list[tuple[float, float, float, float]], list[tuple[float, float, float, float]]]] = {
    "一": ([(0.05, 0.5, 0.95, 0.5)], []),
    "二": ([(0.2, 0.25, 0.8, 0.25), (0.05, 0.8, 0.95, 0.8)], []),
    "三": ([(0.15, 0.12, 0.85, 0.12), (0.22, 0.5, 0.78, 0.5), (0.05, 0.88, 0.95, 0.88)], []),
    "十": ([(0.05, 0.45, 0.95, 0.45), (0.5, 0.05, 0.5, 0.95)], []),
    "口": ([], [(0.1, 0.1, 0.9, 0.9)]),
    "日": ([(0.2, 0.5, 0.8, 0.5)], [(0.2, 0.05, 0.8, 0.95)]),
    "中": ([(0.5, 0.0, 0.5, 1.0)], [(0.1, 0.25, 0.9, 0.7)]),
    "田": ([(0.1, 0.5, 0.9, 0.5), (0.5, 0.1, 0.5, 0.9)], [(0.1, 0.1, 0.9, 0.9)]),
    "王": ([(0.1, 0.1, 0.9, 0.1), (0.2, 0.5, 0.8, 0.5), (0.05, 0.9, 0.95, 0.9), (0.5, 0.1, 0.5, 0.9)], []),
    "工": ([(0.1, 0.12, 0.9, 0.12), (0.05, 0.88, 0.95, 0.88), (0.5, 0.12, 0.5, 0.88)], []),
}
CJK_DRAWABLE = "".join(_CJK_STROKES)


def draw_cjk(chars: str, *, cell: int = 90, stroke: int = 9) -> ImageData:
    """``chars`` (from :data:`CJK_DRAWABLE`) drawn from strokes in a row, black on white."""
    im = Image.new("RGB", (cell * len(chars) + cell, cell * 2), "white")
    draw = ImageDraw.Draw(im)
    for k, ch in enumerate(chars):
        lines, boxes = _CJK_STROKES[ch]
        ox, oy, size = cell // 2 + k * cell + cell // 10, cell // 2, cell * 8 // 10
        for x0, y0, x1, y1 in lines:
            draw.line((ox + x0 * size, oy + y0 * size, ox + x1 * size, oy + y1 * size), fill="black", width=stroke)
        for x0, y0, x1, y1 in boxes:
            draw.rectangle((ox + x0 * size, oy + y0 * size, ox + x1 * size, oy + y1 * size), outline="black", width=stroke)
    return load_image(im)
