"""Tool-verified evidence for the judge: today OCR, for prompts that ask for written text.

The pieces, each in its own module:

* :mod:`~arrpo.evidence.requested` — which text a prompt or edit instruction asks for;
* :mod:`~arrpo.evidence.ocr` — reading images with RapidOCR (the ``ocr`` extra), cached;
* :mod:`~arrpo.evidence.matching` — normalisation, edit distance and word hits;
* :mod:`~arrpo.evidence.values` — the typed records (JSON-serialisable);
* :mod:`~arrpo.evidence.decide` — the evidence-only decision, the per-sample score, ``ocr_policy``;
* :mod:`~arrpo.evidence.block` — the "OCR evidence" block of the judge prompt;
* :mod:`~arrpo.evidence.gather` — all of it for one comparison or one sample.

Importing this package imports none of them: each name is loaded on first use. No module here
imports the OCR engine at import time either (the reader builds it on its first read), so all of
them import without the ``ocr`` extra.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "extract_requested_text": "requested",
    "OcrReader": "ocr",
    "OcrNotInstalledError": "ocr",
    "ocr_available": "ocr",
    "require_ocr": "ocr",
    "shared_reader": "ocr",
    "normalise": "matching",
    "match_candidate": "matching",
    "RequestedText": "values",
    "OcrLine": "values",
    "OcrRead": "values",
    "StringMatch": "values",
    "CandidateMatch": "values",
    "CandidateEvidence": "values",
    "OcrEvidence": "values",
    "EvidenceDecision": "values",
    "PolicyOutcome": "values",
    "SampleScore": "values",
    "VerdictEvidence": "values",
    "OcrPolicy": "values",
    "OCR_POLICIES": "decide",
    "decide_pair": "decide",
    "apply_ocr_policy": "decide",
    "sample_score": "decide",
    "render_ocr_block": "block",
    "OCR_BLOCK_TEMPLATE": "block",
    "reads_for_display": "block",
    "requested_for_display": "block",
    "build_evidence": "gather",
    "gather_ocr_evidence": "gather",
    "score_sample": "gather",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'arrpo.evidence' has no attribute {name!r}")
    return getattr(importlib.import_module(f"arrpo.evidence.{module}"), name)
