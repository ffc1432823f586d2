"""Draw the bundled example pair (a.png, b.png) with PIL: run `python examples/pair/make_pair.py`.

Prompt: "a red bicycle in front of a blue wall". a.png follows it (red bicycle, blue wall);
b.png does not (a green bicycle with one wheel, in front of a brick-coloured wall). Drawn for
arrpo; the images and this script are released under CC0 1.0 (see README.md beside them).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 512
HERE = Path(__file__).resolve().parent


def _bicycle(draw: ImageDraw.ImageDraw, color: tuple[int, int, int], both_wheels: bool) -> None:
    rear, front, radius = (170, 380), (350, 380), 70
    for centre in (rear, front) if both_wheels else (rear,):
        x, y = centre
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=(25, 25, 25), width=10)
        draw.ellipse((x - 8, y - 8, x + 8, y + 8), fill=(60, 60, 60))
    seat, crank, head = (225, 275), (255, 380), (330, 270)
    for start, end in ((rear, seat), (seat, crank), (crank, rear), (seat, head), (head, crank), (head, front)):
        draw.line((start, end), fill=color, width=12)
    draw.line(((205, 262), (250, 262)), fill=(30, 30, 30), width=10)  # saddle
    draw.line(((315, 240), (360, 240)), fill=(30, 30, 30), width=10)  # handlebar
    draw.line(((330, 270), (338, 240)), fill=color, width=10)


def draw(wall: tuple[int, int, int], bike: tuple[int, int, int], both_wheels: bool) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), wall)
    draw_ = ImageDraw.Draw(image)
    draw_.rectangle((0, 450, SIZE, SIZE), fill=(120, 120, 120))  # pavement
    for row in range(0, 450, 45):  # mortar lines
        draw_.line(((0, row), (SIZE, row)), fill=tuple(max(c - 40, 0) for c in wall), width=3)
    _bicycle(draw_, bike, both_wheels)
    return image


def main() -> None:
    draw(wall=(40, 80, 200), bike=(210, 20, 30), both_wheels=True).save(HERE / "a.png", optimize=True)
    draw(wall=(170, 80, 60), bike=(30, 160, 60), both_wheels=False).save(HERE / "b.png", optimize=True)


if __name__ == "__main__":
    main()
