"""Collecting OCR evidence for a comparison or a single sample.

:func:`gather_ocr_evidence` extracts the requested text from the comparison's prompt, and
only when there is some, reads both candidates (and the edit's source image) and matches them.
A prompt that asks for no text gives ``None``: no OCR runs, no block is shown.
"""

from __future__ import annotations

import asyncio

from arrpo.evidence.decide import sample_score
from arrpo.evidence.matching import match_candidate
from arrpo.evidence.ocr import OcrReader
from arrpo.evidence.requested import extract_requested_text
from arrpo.evidence.values import (
    CandidateEvidence,
    OcrEvidence,
    OcrRead,
    RequestedText,
    SampleScore,
)
from arrpo.images import ImageData
from arrpo.schema import Comparison, Task


def build_evidence(
    requested: RequestedText,
    read_a: OcrRead,
    read_b: OcrRead,
    *,
    source: OcrRead | None = None,
    task: Task = "t2i",
) -> OcrEvidence:
    """The evidence record from the reads (pure: matching only)."""
    candidates = [CandidateEvidence(read=read) for read in (read_a, read_b)]
    for candidate in candidates:
        if candidate.read.ok:
            lines = [line.text for line in candidate.read.lines]
            candidate.match = match_candidate(requested.strings, lines, requested.old)
    failed = [f"image {name}: {c.read.unavailable}" for name, c in zip("AB", candidates, strict=True) if not c.read.ok]
    return OcrEvidence(task=task, requested=requested, a=candidates[0], b=candidates[1], source=source,
                       unavailable="; ".join(failed) or None)


async def gather_ocr_evidence(
    comparison: Comparison, reader: OcrReader, *, requested: RequestedText | None = None
) -> OcrEvidence | None:
    """The OCR evidence of ``comparison``, or ``None`` when its prompt asks for no text.

    Never raises for an image or engine failure (those are recorded in the evidence).
    ``requested`` overrides what is extracted from the prompt.
    """
    asked = requested if requested is not None else extract_requested_text(comparison.prompt)
    if not asked.asks_for_text:
        return None
    images = [comparison.image_a, comparison.image_b]
    if comparison.source is not None:
        images.append(comparison.source)
    reads = await asyncio.gather(*(reader.aread(image) for image in images))
    return build_evidence(asked, reads[0], reads[1], source=reads[2] if len(reads) > 2 else None,
                          task=comparison.task)


async def score_sample(
    prompt: str, image: ImageData, reader: OcrReader, *, requested: RequestedText | None = None
) -> SampleScore:
    """The per-sample OCR score of ``image`` for ``prompt`` (``score=None``: no signal).

    The image is read only when the prompt asks for text.
    """
    asked = requested if requested is not None else extract_requested_text(prompt)
    if not asked.asks_for_text:
        return sample_score(asked, None)
    return sample_score(asked, await reader.aread(image))
