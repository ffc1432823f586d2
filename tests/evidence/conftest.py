"""Fixtures for the OCR evidence tests: one real OCR reader per session (the engine loads once)."""

from __future__ import annotations

import pytest

from arrpo.evidence.ocr import ocr_available

needs_ocr = pytest.mark.skipif(not ocr_available(), reason='needs the ocr extra: pip install "arrpo[ocr]"')


@pytest.fixture(scope="session")
def reader():
    """The real RapidOCR reader, one thread (CI has two shared cores)."""
    if not ocr_available():
        pytest.skip('needs the ocr extra: pip install "arrpo[ocr]"')
    from arrpo.evidence.ocr import OcrReader

    ocr = OcrReader(threads=1)
    yield ocr
    ocr.close()
