"""Image loading: every bad case has a clear error; odd modes become RGB; encoding happens once."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from arrpo.images import ImageData, ImageError, load_image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_png_passes_through_unchanged():
    raw = encode(Image.new("RGB", (20, 10), (10, 20, 30)), "PNG")
    image = load_image(raw)
    assert image.data == raw and image.mime == "image/png"
    assert (image.width, image.height) == (20, 10)


def test_path_and_pil_sources(tmp_path):
    path = tmp_path / "x.jpg"
    Image.new("RGB", (16, 16), (200, 0, 0)).save(path, format="JPEG")
    from_path = load_image(path)
    assert from_path.mime == "image/jpeg" and from_path.origin == str(path)
    from_pil = load_image(Image.new("RGB", (8, 8)))
    assert from_pil.mime == "image/png"
    assert load_image(from_pil) is from_pil


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such image file"):
        load_image(tmp_path / "absent.png")


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty image"):
        load_image(path)


def test_unsupported_format():
    with pytest.raises(ImageError, match="not a recognised image format"):
        load_image(b"%PDF-1.4 this is not an image")


def test_truncated_image():
    raw = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(raw[: len(raw) // 2])


def test_truncated_jpeg():
    raw = encode(Image.effect_noise((128, 128), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(raw[: len(raw) // 3])


def test_decompression_bomb():
    raw = encode(Image.new("L", (5000, 5000)), "PNG", optimize=True)
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(raw, max_image_pixels=10_000_000)
    assert load_image(raw, max_image_pixels=30_000_000).width == 5000


@pytest.mark.parametrize(
    ("mode", "color"),
    [("CMYK", (0, 255, 255, 0)), ("RGBA", (255, 0, 0, 0)), ("LA", (100, 128)), ("P", 3),
     ("L", 77), ("1", 1), ("I;16", 40000), ("I", 70000), ("F", 0.5)],
)
def test_modes_become_rgb(mode, color):
    image = Image.new(mode, (8, 8), color)
    fmt = "TIFF" if mode in ("I;16", "I", "F", "CMYK") else "PNG"
    loaded = load_image(encode(image, fmt))
    decoded = loaded.to_pil()
    assert decoded.mode == "RGB" and decoded.size == (8, 8)


def test_transparent_pixels_become_white():
    loaded = load_image(encode(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG"))
    assert loaded.to_pil().getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg_is_converted():
    loaded = load_image(encode(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG"))
    assert loaded.mime == "image/jpeg"
    r, g, b = loaded.to_pil().getpixel((4, 4))
    assert min(r, g, b) > 240  # CMYK (0,0,0,0) is white


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (30, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    loaded = load_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert (loaded.width, loaded.height) == (10, 30)


def test_pixel_budget_downscales_keeping_aspect():
    loaded = load_image(encode(Image.new("RGB", (400, 100)), "PNG"), max_pixels=10_000)
    assert loaded.width * loaded.height <= 10_000
    assert abs(loaded.width / loaded.height - 4) < 0.1
    small = encode(Image.new("RGB", (10, 10)), "PNG")
    assert load_image(small, max_pixels=10_000).data == small


def test_hash_and_data_url_are_computed_once():
    image = load_image(encode(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG"))
    assert image.data_url is image.data_url
    assert image.data_url.startswith("data:image/png;base64,")
    assert base64.b64decode(image.base64) == image.data
    twin = ImageData(image.data, image.mime, image.width, image.height)
    assert twin == image and hash(twin) == hash(image) and twin.sha256 == image.sha256


def test_wrong_source_type():
    with pytest.raises(ImageError, match="unsupported image source type"):
        load_image(12345)  # type: ignore[arg-type]
