"""Reading text in images with RapidOCR (PP-OCRv4, ONNX, CPU), cached, never raising.

Needs the ``ocr`` extra: ``pip install "arrpo[ocr]"``, which pins ``rapidocr-onnxruntime==1.4.4``.
That wheel ships its detection, orientation and recognition models (Chinese and English) and
never downloads anything; the newer ``rapidocr`` packages fetch models at run time and are not
used. :class:`OcrReader` raises :class:`OcrNotInstalledError` at construction when the package
is missing; after that every failure (an undecodable image, an engine error) is an
:class:`~arrpo.evidence.values.OcrRead` whose ``unavailable`` says why.

One reader holds one lazily built engine, used by one thread at a time (the engine keeps state
between calls and is CPU-bound anyway). Async callers use :meth:`OcrReader.aread`, which runs
the work on the reader's own single worker thread, so an event loop never waits on OCR and
concurrent reads of the same image are read once (the second finds the cache).

Images are prepared for the model: downscaled so the longer side is at most ``max_side``,
upscaled so the shorter side is at least ``min_side`` (never past ``max_side``), and given a
margin of their own edge colour, since the detector misses text that touches the border. Boxes
are reported in the original image's pixels.

Results are cached by image content (SHA-256 of the image bytes) and reader settings: in memory
(bounded, least recently used dropped first) and, when a :class:`~arrpo.vlm.cache.ResponseCache`
is given, in that SQLite file too (under keys starting ``ocr:``), so the same cache file that
keeps VLM answers keeps OCR reads. Only successful reads are cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from math import ceil
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from arrpo.errors import ArrpoError
from arrpo.evidence.values import OcrLine, OcrRead
from arrpo.images import ImageData
from arrpo.text import clip, valid_utf8
from arrpo.vlm.base import VLMResponse

log = logging.getLogger(__name__)

#: The package (and version) the ``ocr`` extra pins.
OCR_PACKAGE = "rapidocr-onnxruntime"
OCR_MODULE = "rapidocr_onnxruntime"
INSTALL_HINT = 'pip install "arrpo[ocr]"'
#: Lines kept per image, and characters per line (what a verdict keeps is bounded).
MAX_LINES = 64
MAX_LINE_CHARS = 300
#: Lines the model is less sure of than this are dropped (the engine's own default).
MIN_CONFIDENCE = 0.5
#: No side of the image the engine sees is more than this many times the other (see prepare_image).
MAX_ASPECT = 4

Engine = Callable[[Any], Any]  # called with an RGB->BGR numpy array, returns (result, elapsed)


class OcrNotInstalledError(ArrpoError, ImportError, kind="config"):
    """OCR evidence was asked for but the ``ocr`` extra is not installed."""


def ocr_available() -> bool:
    """True when the OCR package is installed (checked without importing it)."""
    return importlib.util.find_spec(OCR_MODULE) is not None


def require_ocr() -> None:
    """Raise :class:`OcrNotInstalledError`, saying what to install, when OCR is not installed."""
    if not ocr_available():
        raise OcrNotInstalledError(
            f"OCR evidence needs the ocr extra ({OCR_PACKAGE}, which ships its models): {INSTALL_HINT}"
        )


_shared: OcrReader | None = None
_shared_lock = threading.Lock()


def shared_reader() -> OcrReader:
    """The process's default :class:`OcrReader` (built on first use): every judge that is given no
    reader of its own shares its engine and its cache of reads.

    Raises:
        OcrNotInstalledError: the ``ocr`` extra is not installed.
    """
    global _shared
    require_ocr()
    with _shared_lock:
        if _shared is None:
            _shared = OcrReader()
        return _shared


def _default_engine(threads: int | None) -> Engine:
    from rapidocr_onnxruntime import RapidOCR  # the ocr extra

    # The detector works at the prepared image's own size (with ``det_limit_type="max"`` the
    # engine keeps images up to 2000 pixels as they are; ``max_side`` bounds them before).
    # RapidOCR's default instead scales the *shorter* side up to 736 pixels, which makes a
    # 512x256 image 1472x736 and detection ten times slower, for no gain on such images.
    options: dict[str, Any] = {"print_verbose": False, "det_limit_type": "max"}
    if threads:
        options.update(intra_op_num_threads=threads, inter_op_num_threads=1)
    return RapidOCR(**options)


def _engine_name() -> str:
    try:
        version = importlib.metadata.version(OCR_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"{OCR_PACKAGE}=={version} (PP-OCRv4)"


class OcrReader:
    """Read the text in images; one engine, built on first use.

    Args:
        max_side: longest image side the model sees (larger images are downscaled). The default
            keeps generated images of up to 1024 pixels as they are; raise it to read small text
            in large photos (detection time grows with the pixel count).
        min_side: shortest side the model sees (smaller images are upscaled, up to ``max_side``).
        threads: CPU threads of the engine (``None``: onnxruntime's default, all cores).
        cache_size: reads kept in memory (least recently used dropped first; 0 turns it off).
        disk_cache: an optional :class:`~arrpo.vlm.cache.ResponseCache` to keep reads across runs.
        engine_factory: builds the engine (tests and other OCR engines); the default is RapidOCR.
            When given, the ``ocr`` extra is not required.

    Raises:
        OcrNotInstalledError: the ``ocr`` extra is not installed (and no ``engine_factory``).
    """

    def __init__(
        self,
        *,
        max_side: int = 1024,
        min_side: int = 64,
        threads: int | None = None,
        cache_size: int = 4096,
        disk_cache: Any | None = None,
        engine_factory: Callable[[], Engine] | None = None,
        engine_name: str | None = None,
    ):
        if engine_factory is None:
            require_ocr()
        if not 32 <= min_side <= max_side:
            raise ValueError(f"need 32 <= min_side <= max_side (got {min_side}, {max_side})")
        self.max_side = max_side
        self.min_side = min_side
        self.engine_name = engine_name or (_engine_name() if engine_factory is None else "custom")
        self._factory = engine_factory or (lambda: _default_engine(threads))
        self._engine: Engine | None = None
        self._engine_error: str | None = None
        self._engine_lock = threading.Lock()
        self._cache: OrderedDict[str, OcrRead] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_size = cache_size
        self._disk = disk_cache
        self._executor: ThreadPoolExecutor | None = None
        self.reads = 0  # images actually run through the engine (cache misses)

    # ------------------------------------------------------------------ public
    def check(self) -> None:
        """Build the engine now; raise :class:`ArrpoError` if it cannot be built (call at start-up
        to fail loudly instead of recording "evidence unavailable" for every image)."""
        self._get_engine()
        if self._engine_error is not None:
            raise ArrpoError(f"the OCR engine cannot start: {self._engine_error}", kind="config")

    def read(self, image: ImageData) -> OcrRead:
        """The text in ``image``; never raises (failures are ``unavailable`` reads)."""
        key = self.cache_key(image)
        hit = self._cached(key)
        if hit is not None:
            return hit
        started = time.perf_counter()
        try:
            prepared, scale, left, top = prepare_image(image, self.max_side, self.min_side)
        except Exception as exc:  # bytes that do not decode (an ImageData not from load_image)
            return self._unavailable(image, started, f"the image could not be decoded ({type(exc).__name__})")
        try:
            result = self._read(image, prepared, scale, (left, top))
        except Exception as exc:  # an engine failure must not end a batch
            reason = valid_utf8(clip(f"{type(exc).__name__}: {exc}", 300))
            return self._unavailable(image, started, f"the OCR engine failed: {reason}")
        result.latency_ms = _ms(started)
        self._store(key, result)
        return result

    async def aread(self, image: ImageData) -> OcrRead:
        """:meth:`read` on the reader's worker thread (the event loop never waits on OCR)."""
        hit = self._memory_get(self.cache_key(image))
        if hit is not None:
            return hit
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker(), self.read, image)

    def cache_key(self, image: ImageData) -> str:
        """Key of a read: reader settings, engine and image content."""
        settings = f"{self.max_side}:{self.min_side}"
        return f"ocr:v1:{self.engine_name}:{settings}:{image.sha256}"

    def close(self) -> None:
        """Stop the worker thread (reads after this start a new one)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    # ------------------------------------------------------------------ engine
    def _get_engine(self) -> Engine | None:
        with self._engine_lock:
            if self._engine is None and self._engine_error is None:
                try:
                    self._engine = self._factory()
                except Exception as exc:
                    self._engine_error = valid_utf8(clip(f"{type(exc).__name__}: {exc}", 300))
                    log.error("the OCR engine cannot start (%s); OCR evidence is unavailable",
                              self._engine_error)
            return self._engine

    def _worker(self) -> ThreadPoolExecutor:
        with self._cache_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arrpo-ocr")
            return self._executor

    def _unavailable(self, image: ImageData, started: float, reason: str) -> OcrRead:
        return OcrRead(image_sha256=image.sha256, unavailable=reason, engine=self.engine_name,
                       latency_ms=_ms(started))

    def _read(self, image: ImageData, prepared: Image.Image, scale: float,
              offset: tuple[int, int]) -> OcrRead:
        bgr = np.ascontiguousarray(np.asarray(prepared)[:, :, ::-1])
        engine = self._get_engine()
        if engine is None:
            return OcrRead(image_sha256=image.sha256, engine=self.engine_name,
                           unavailable=f"the OCR engine cannot start: {self._engine_error}")
        with self._engine_lock:
            self.reads += 1
            output = engine(bgr)
        raw = output[0] if isinstance(output, tuple) else output
        lines = [_line(item, scale, offset, image) for item in (raw or [])]
        kept = [line for line in lines if line is not None and line.confidence >= MIN_CONFIDENCE]
        return OcrRead(image_sha256=image.sha256, lines=kept[:MAX_LINES], engine=self.engine_name)

    # ------------------------------------------------------------------- cache
    def _cached(self, key: str) -> OcrRead | None:
        hit = self._memory_get(key)
        if hit is None and self._disk is not None:
            hit = self._disk_get(key)
            if hit is not None:
                self._memory_put(key, hit)
        return hit

    def _memory_get(self, key: str) -> OcrRead | None:
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit.model_copy(update={"cached": True, "latency_ms": 0.0})
        return None

    def _memory_put(self, key: str, read: OcrRead) -> None:
        if self._cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[key] = read
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _disk_get(self, key: str) -> OcrRead | None:
        try:
            stored = self._disk.get(key)
            if stored is None:
                return None
            return OcrRead.model_validate_json(stored.text).model_copy(
                update={"cached": True, "latency_ms": 0.0})
        except Exception as exc:  # written by another version, damaged: a miss
            log.warning("dropping an unreadable cached OCR read (%s: %s)", type(exc).__name__, exc)
            with contextlib.suppress(Exception):
                self._disk.delete(key)
            return None

    def _store(self, key: str, read: OcrRead) -> None:
        if not read.ok:
            return
        self._memory_put(key, read.model_copy(deep=True))  # the caller may change its own copy
        if self._disk is not None:
            try:
                self._disk.put(key, VLMResponse(text=read.model_dump_json(), model=self.engine_name))
            except Exception as exc:  # the cache is an optimisation
                log.warning("OCR read not cached (%s: %s)", type(exc).__name__, exc)


def prepare_image(image: ImageData, max_side: int, min_side: int) -> tuple[Image.Image, float, int, int]:
    """The image as the engine sees it, and how to map its pixels back: ``(rgb, scale, left, top)``.

    Scaled so the longer side is at most ``max_side`` and the shorter at least ``min_side``
    (never past ``max_side``); then given a margin of its edge colour, widened on the short
    side so that no side is more than :data:`MAX_ASPECT` times the other (the detector scales
    the shorter side up to 736 pixels, so a thin strip would otherwise become huge).
    """
    im = _decode(image, max_side)
    w, h = im.size
    scale = min(1.0, max_side / max(w, h))
    if min(w, h) * scale < min_side:
        scale = min(min_side / min(w, h), max_side / max(w, h))
    if abs(scale - 1.0) > 1e-6:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    scale = im.width / max(1, image.width)  # from the original pixels (a JPEG may decode smaller)
    w, h = im.size
    pad = max(8, min(64, round(0.15 * min(w, h))))
    left = top = pad
    if w + 2 * pad > MAX_ASPECT * (h + 2 * pad):
        top = (ceil((w + 2 * pad) / MAX_ASPECT) - h + 1) // 2
    elif h + 2 * pad > MAX_ASPECT * (w + 2 * pad):
        left = (ceil((h + 2 * pad) / MAX_ASPECT) - w + 1) // 2
    im = ImageOps.expand(im, border=(left, top, left, top), fill=_edge_colour(im))
    return im, scale, left, top


def _decode(image: ImageData, max_side: int) -> Image.Image:
    """The image as RGB; a large JPEG is decoded at a reduced scale (no larger than needed)."""
    with Image.open(io.BytesIO(image.data)) as opened:
        if opened.format == "JPEG" and max(opened.size) > 2 * max_side:
            factor = max_side / max(opened.size)
            opened.draft("RGB", (max(1, int(opened.width * factor)), max(1, int(opened.height * factor))))
        return opened.convert("RGB")


def _edge_colour(im: Image.Image) -> tuple[int, int, int]:
    """The median colour of the image's outermost pixels (the margin's colour)."""
    arr = np.asarray(im)
    edge = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))  # type: ignore[return-value]


def _line(item: Any, scale: float, offset: tuple[int, int], image: ImageData) -> OcrLine | None:
    """One engine result ``[box, text, score]`` as an :class:`OcrLine` (None if malformed)."""
    try:
        box, text, score = item[0], item[1], float(item[2])
    except (TypeError, IndexError, ValueError):
        return None
    if not isinstance(text, str) or not text.strip() or score != score:  # NaN
        return None
    return OcrLine(text=valid_utf8(clip(text.strip(), MAX_LINE_CHARS)),
                   confidence=min(1.0, max(0.0, score)), box=_bounds(box, scale, offset, image))


def _bounds(box: Any, scale: float, offset: tuple[int, int], image: ImageData) -> tuple[int, int, int, int] | None:
    """A detected quadrilateral as (left, top, right, bottom) in the original image's pixels."""
    try:
        xs = [(float(p[0]) - offset[0]) / scale for p in box]
        ys = [(float(p[1]) - offset[1]) / scale for p in box]
        return (_clamp(min(xs), image.width), _clamp(min(ys), image.height),
                _clamp(max(xs), image.width), _clamp(max(ys), image.height))
    except (TypeError, IndexError, ValueError, OverflowError):
        return None


def _clamp(value: float, limit: int) -> int:
    return int(min(max(value, 0.0), float(limit)))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
