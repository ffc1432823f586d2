"""The OCR reader with the real PP-OCRv4 model on generated images, and its failure paths."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from arrpo.errors import ArrpoError
from arrpo.evidence.matching import match_candidate
from arrpo.evidence.ocr import OcrReader
from arrpo.evidence.values import OcrRead
from arrpo.images import ImageData, load_image
from arrpo.testing.text_images import Scene, draw_cjk, font, render_scene
from arrpo.vlm.cache import ResponseCache

from .conftest import needs_ocr

pytestmark = needs_ocr


def texts(read: OcrRead) -> list[str]:
    return [line.text for line in read.lines]


def score(read: OcrRead, requested: str) -> float:
    return match_candidate([requested], texts(read)).score


def test_reads_a_sign_with_boxes_in_image_pixels(reader: OcrReader) -> None:
    image = render_scene(Scene("OPEN LATE", canvas=(480, 280), clutter=6, seed=1))
    read = reader.read(image)
    assert read.ok and not read.cached
    assert score(read, "OPEN LATE") == 1.0
    line = next(line for line in read.lines if "OPEN" in line.text.upper())
    assert 0.5 <= line.confidence <= 1.0
    left, top, right, bottom = line.box
    assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height
    assert read.engine.startswith("rapidocr-onnxruntime==1.4.4")


def test_an_image_without_text_reads_nothing_and_is_not_a_failure(reader: OcrReader) -> None:
    read = reader.read(render_scene(Scene(" ", canvas=(320, 200), sign=None, clutter=0)))
    assert read.ok and read.lines == []


def test_huge_and_tiny_images(reader: OcrReader) -> None:
    huge = render_scene(Scene("GRAND OPENING", size=200, canvas=(3000, 2000), jpeg_quality=90, seed=2))
    read = reader.read(huge)
    assert score(read, "GRAND OPENING") == 1.0
    left, top, right, bottom = read.lines[0].box  # in the original's pixels: around the centre
    assert left < 1500 < right and top < 1000 < bottom and right - left > 1500
    tiny = Image.new("RGB", (64, 22), "white")
    ImageDraw.Draw(tiny).text((4, 2), "STOP", font=font("DejaVuSans-Bold", 15), fill="black")
    assert score(reader.read(load_image(tiny)), "STOP") == 1.0
    strip = render_scene(Scene("THIN STRIP", size=28, canvas=(2400, 48), sign=None))
    assert score(reader.read(strip), "THIN STRIP") == 1.0  # extreme aspect ratios are padded


@pytest.mark.parametrize("angle", [12, 90])
def test_rotated_text(reader: OcrReader, angle: int) -> None:
    image = render_scene(Scene("CAFE ROSA", size=40, canvas=(360, 360), rotation=angle, seed=3))
    assert score(reader.read(image), "CAFE ROSA") == 1.0


def test_cjk_text_drawn_from_strokes(reader: OcrReader) -> None:
    # No CJK font is installed on the CI machine: these characters are drawn from straight strokes.
    read = reader.read(draw_cjk("中日口十"))
    assert "".join(texts(read)) == "中日口十"
    assert match_candidate(["中日口十"], texts(read)).score == 1.0
    assert match_candidate(["中日田十"], texts(read)).score == pytest.approx(0.75)


def test_cjk_text_from_a_font_when_one_is_installed(reader: OcrReader) -> None:
    found = subprocess.run(["fc-match", "-f", "%{file}", ":lang=zh"], capture_output=True, text=True,
                           check=False) if Path("/usr/bin/fc-match").exists() else None
    path = found.stdout.strip() if found is not None else ""
    if not path or "dejavu" in path.lower() or not Path(path).is_file():
        pytest.skip("no CJK font installed (the stroke-drawn test covers CJK reading)")
    from PIL import ImageFont

    im = Image.new("RGB", (520, 200), "white")
    ImageDraw.Draw(im).text((30, 50), "生日快乐", font=ImageFont.truetype(path, 80), fill="black")
    assert score(reader.read(load_image(im)), "生日快乐") == 1.0


def test_a_corrupt_image_is_unavailable_not_an_exception(reader: OcrReader) -> None:
    corrupt = ImageData(b"\x89PNG\r\n\x1a\n not really", "image/png", 10, 10)
    read = reader.read(corrupt)
    assert not read.ok and "could not be decoded" in read.unavailable
    assert not reader.read(corrupt).cached  # failures are not cached


def fake_engine(result, log: list | None = None):
    def engine(bgr):
        if log is not None:
            log.append((threading.current_thread().name, bgr.shape))
        if isinstance(result, BaseException):
            raise result
        return result, [0.0]

    return engine


def test_engine_failures_are_unavailable_reads(make_image) -> None:
    image = make_image((200, 200, 200), (64, 64))
    failing = OcrReader(engine_factory=lambda: fake_engine(RuntimeError("onnx session died")))
    read = failing.read(image)
    assert not read.ok and "engine failed" in read.unavailable and "onnx session died" in read.unavailable

    def cannot_start():
        raise OSError("libGL.so.1: cannot open shared object file")

    broken = OcrReader(engine_factory=cannot_start)
    assert "cannot start" in broken.read(image).unavailable
    with pytest.raises(ArrpoError, match="libGL"):
        broken.check()


def test_malformed_engine_output_is_skipped(make_image) -> None:
    garbage = [[None, 5, "x"], [[[0, 0]] * 4, "", 0.9], [[[0, 0]] * 4, "OK", float("nan")],
               [[[1, 1], [9, 1], [9, 9], [1, 9]], "FINE", 0.97], "not a list", [[["a", "b"]] * 4, "BOX?", 0.9]]
    reader = OcrReader(engine_factory=lambda: fake_engine(garbage))
    read = reader.read(make_image((10, 10, 10), (64, 64)))
    assert read.ok and texts(read) == ["FINE", "BOX?"]
    assert read.lines[1].box is None


def test_memory_cache_by_image_content(reader: OcrReader) -> None:
    scene = Scene("BAKERY", canvas=(320, 200), seed=5)
    first = reader.read(render_scene(scene))
    runs = reader.reads
    again = reader.read(render_scene(scene))  # a new ImageData with the same bytes
    assert again.cached and reader.reads == runs
    assert texts(again) == texts(first)


def test_disk_cache_survives_a_new_reader_and_drops_damaged_rows(reader: OcrReader, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "responses.sqlite")
    image = render_scene(Scene("FRESH BREAD", canvas=(400, 200), seed=6))
    first = OcrReader(threads=1, disk_cache=cache).read(image)
    assert first.ok and not first.cached

    def no_engine():
        raise AssertionError("the engine must not run for a cached image")

    later = OcrReader(disk_cache=cache, engine_factory=no_engine, engine_name=first.engine)
    hit = later.read(image)
    assert hit.cached and texts(hit) == texts(first)

    from arrpo.vlm.base import VLMResponse

    cache.put(later.cache_key(image), VLMResponse(text="{not json"))
    fallback = OcrReader(disk_cache=cache, engine_factory=lambda: fake_engine([]), engine_name=first.engine)
    assert fallback.read(image).ok and fallback.reads == 1  # the damaged row was a miss
    cache.close()


def test_no_network_access(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    fresh = OcrReader(threads=1)  # builds the engine from the wheel's own model files
    fresh.check()
    assert score(fresh.read(render_scene(Scene("NO NETWORK", canvas=(400, 200), seed=7))), "NO NETWORK") == 1.0
    assert attempts == []


async def test_async_reads_run_on_the_worker_thread_one_at_a_time(make_image) -> None:
    log: list = []
    active, most = [0], [0]

    def engine(bgr):
        active[0] += 1
        most[0] = max(most[0], active[0])
        log.append(threading.current_thread().name)
        threading.Event().wait(0.01)
        active[0] -= 1
        return [[[[1, 1], [9, 1], [9, 9], [1, 9]], "HI", 0.99]], [0.0]

    reader = OcrReader(engine_factory=lambda: engine)
    images = [make_image((i * 20, 0, 0), (48, 48)) for i in range(6)]
    reads = await asyncio.gather(*(reader.aread(im) for im in images + images[:2]))
    assert [texts(r) for r in reads] == [["HI"]] * 8
    assert all(name.startswith("arrpo-ocr") for name in log)
    assert len(log) == 6 and most[0] == 1  # the repeats were cache hits; never two at once
    reader.close()


def test_threads_share_one_engine_safely(make_image) -> None:
    active, most, built = [0], [0], []
    lock = threading.Lock()

    def engine(bgr):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        threading.Event().wait(0.005)
        with lock:
            active[0] -= 1
        return [], [0.0]

    def factory():
        built.append(1)
        return engine

    reader = OcrReader(engine_factory=factory)
    images = [make_image((0, i * 10, 0), (40, 40)) for i in range(12)]
    workers = [threading.Thread(target=reader.read, args=(im,)) for im in images]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(built) == 1 and most[0] == 1 and reader.reads == 12


def test_the_core_imports_without_the_extra_and_asking_for_ocr_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['rapidocr_onnxruntime'] = None\n"
        "import arrpo, arrpo.judge, arrpo.evidence\n"
        "from arrpo.evidence import OcrReader, OcrNotInstalledError, extract_requested_text\n"
        "import arrpo.evidence.gather, arrpo.evidence.block\n"
        "assert extract_requested_text('a sign \"HI\"').strings == ('HI',)\n"
        "assert not {'cv2', 'onnxruntime'} & set(sys.modules), 'OCR libraries imported early'\n"
        "try:\n    OcrReader()\nexcept OcrNotInstalledError as exc:\n    print(exc.kind, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("config ") and 'pip install "arrpo[ocr]"' in done.stdout
    # installed, the engine's libraries still load only when a reader first reads
    lazy = ("import sys, arrpo.evidence.gather, arrpo.evidence.block\n"
            "from arrpo.evidence import OcrReader\nOcrReader()\n"
            "assert not {'cv2', 'onnxruntime', 'rapidocr_onnxruntime'} & set(sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
