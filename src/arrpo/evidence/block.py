"""The "OCR evidence" block of the judge prompt (template ``prompts/ocr_evidence.j2``).

The block names images only by their shown labels (Image 1 / Image 2, or Edited Image 1 / 2
and Image BASE), never as A or B, and words each image's line the same way: rendering the
evidence in order ``BA`` gives the block of order ``AB`` with the two image lines' contents
exchanged. Text read from an image is untrusted: control and invisible format characters are
removed, each string is clipped and written as a JSON string literal (quotes and backslashes
escaped), and the amount shown per image is capped, with a count of what was left out.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from arrpo.evidence.values import CandidateEvidence, OcrEvidence, OcrRead
from arrpo.prompts import render
from arrpo.text import valid_utf8
from arrpo.vocab import Order

#: The template the block is written from (part of the judge's prompt hash when evidence is on).
OCR_BLOCK_TEMPLATE = "ocr_evidence"
#: Lines shown per image, characters per line, characters per image in all.
SHOWN_LINES = 6
SHOWN_LINE_CHARS = 60
SHOWN_IMAGE_CHARS = 240
#: Requested strings shown, characters each.
SHOWN_REQUESTS = 8
SHOWN_REQUEST_CHARS = 100
#: Characters of an "unavailable" reason shown.
SHOWN_REASON_CHARS = 120


def quote(text: str, limit: int) -> str:
    """``text`` as a short, safe JSON string literal: no control or format characters, spaces
    collapsed, at most ``limit`` characters (an ellipsis marks a cut)."""
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in valid_utf8(text))
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(1, limit - 1)].rstrip() + "…"
    return json.dumps(cleaned, ensure_ascii=False)


def _reason(text: str) -> str:
    return quote(text, SHOWN_REASON_CHARS)[1:-1]


def _reads(read: OcrRead) -> tuple[list[str], int]:
    """The quoted lines shown for one image and how many lines were left out."""
    shown: list[str] = []
    used = 0
    for line in read.lines[:SHOWN_LINES]:
        text = quote(line.text, SHOWN_LINE_CHARS)
        if shown and used + len(text) > SHOWN_IMAGE_CHARS:
            break
        shown.append(text)
        used += len(text)
    return shown, len(read.lines) - len(shown)


def _image(candidate: CandidateEvidence) -> dict[str, Any]:
    if not candidate.read.ok or candidate.match is None:
        return {"unavailable": _reason(candidate.read.unavailable or "not read")}
    reads, more = _reads(candidate.read)
    match = candidate.match
    missing = [quote(w, 30) for s in match.strings for w in s.missing_words][:6]
    return {
        "unavailable": None,
        "reads": reads,
        "more": more,
        "score": f"{match.score:.2f}",
        "words": f"{match.words_found}/{match.words_total}",
        "missing": missing,
        "old_score": None if match.old_score is None else f"{match.old_score:.2f}",
    }


def _source(read: OcrRead | None) -> dict[str, Any] | None:
    if read is None:
        return None
    if not read.ok:
        return {"unavailable": _reason(read.unavailable or "not read"), "reads": [], "more": 0}
    reads, more = _reads(read)
    return {"unavailable": None, "reads": reads, "more": more}


def render_ocr_block(evidence: OcrEvidence | None, order: Order) -> str:
    """The evidence block for the prompt of one order (``AB``: A is shown as Image 1).

    ``""`` when there is no evidence (the prompt asks for no text): the prompt then has no block.
    """
    if evidence is None or not evidence.requested.asks_for_text:
        return ""
    if order not in ("AB", "BA"):
        raise ValueError(f"order must be 'AB' or 'BA', not {order!r}")
    shown = (evidence.a, evidence.b) if order == "AB" else (evidence.b, evidence.a)
    return render(
        OCR_BLOCK_TEMPLATE,
        task=evidence.task,
        requested=[quote(s, SHOWN_REQUEST_CHARS) for s in evidence.requested.strings[:SHOWN_REQUESTS]],
        old=[quote(s, SHOWN_REQUEST_CHARS) for s in evidence.requested.old[:SHOWN_REQUESTS]],
        source=_source(evidence.source) if evidence.task == "edit" else None,
        images=[_image(c) for c in shown],
    )


def reads_for_display(evidence: OcrEvidence | None) -> dict[str, str]:
    """One short line per image — ``"A"``, ``"B"`` and, for edits, ``"source"`` — saying what was
    read and how well it matches, for reports and review pages to show beside each image.

    Plain text (quoted and clipped like the prompt block); HTML pages still escape it. ``{}``
    when there is no evidence.
    """
    if evidence is None or not evidence.requested.asks_for_text:
        return {}
    shown: dict[str, str] = {}
    for name, candidate in (("A", evidence.a), ("B", evidence.b)):
        image = _image(candidate)
        if image["unavailable"]:
            shown[name] = f"OCR unavailable ({image['unavailable']})"
        else:
            read = ", ".join(image["reads"]) or "no text read"
            more = f" (and {image['more']} more)" if image["more"] else ""
            shown[name] = f"OCR: {read}{more} · match {image['score']}"
    if evidence.source is not None:
        source = _source(evidence.source)
        shown["source"] = (f"OCR unavailable ({source['unavailable']})" if source["unavailable"]
                           else f"OCR: {', '.join(source['reads']) or 'no text read'}")
    return shown


def requested_for_display(evidence: OcrEvidence | None) -> str:
    """The text a pair's prompt asks for, as one short line for reports and review pages
    (``Requested text: "OPEN LATE", "JULY 4"``; an edit also names the text it replaces).

    Quoted and clipped like the prompt block; HTML pages still escape it. ``""`` when there is
    no evidence.
    """
    if evidence is None or not evidence.requested.asks_for_text:
        return ""
    asked = evidence.requested
    strings = ", ".join(quote(s, SHOWN_REQUEST_CHARS) for s in asked.strings[:SHOWN_REQUESTS])
    more = f" (and {len(asked.strings) - SHOWN_REQUESTS} more)" if len(asked.strings) > SHOWN_REQUESTS else ""
    old = ", ".join(quote(s, SHOWN_REQUEST_CHARS) for s in asked.old[:SHOWN_REQUESTS])
    if evidence.task == "edit":
        return f"Requested new text: {strings}{more}" + (f"; text to replace: {old}" if old else "")
    return f"Requested text: {strings}{more}"
