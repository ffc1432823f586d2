"""Evidence for whole comparisons with the real OCR model: T2I typos, edits, several strings,
no requested text (no OCR run), a failed read — and the block and decision built from it."""

from __future__ import annotations

import pytest

from arrpo.evidence import decide_pair, gather_ocr_evidence, render_ocr_block, score_sample
from arrpo.evidence.ocr import OcrReader
from arrpo.images import ImageData
from arrpo.schema import Comparison
from arrpo.testing.text_images import Scene, render_scene, typo

from .conftest import needs_ocr

pytestmark = needs_ocr


@pytest.mark.parametrize("kind", ["substitution", "deletion", "swap", "double"])
async def test_a_one_letter_typo_loses(reader: OcrReader, kind: str) -> None:
    scene = Scene("FRESH COFFEE", size=40, canvas=(440, 200), clutter=8, seed=11)
    wrong = typo(scene.text, kind, seed=2)
    comparison = Comparison(prompt=f'a cafe sign that says "{scene.text}"',
                            image_a=render_scene(scene.with_text(wrong)), image_b=render_scene(scene))
    evidence = await gather_ocr_evidence(comparison, reader)
    assert evidence is not None and evidence.unavailable is None
    decision = decide_pair(evidence)
    assert decision.winner == "B" and decision.decisive, (wrong, evidence.a.read.text)
    assert f'"{scene.text}"' in render_ocr_block(evidence, "BA").splitlines()[2]  # B is Image 1 in BA


async def test_several_quoted_strings(reader: OcrReader) -> None:
    scene = Scene("SUMMER FEST\nJULY 4", size=40, canvas=(440, 260), seed=12)
    comparison = Comparison(prompt='a poster titled "SUMMER FEST" with the date "JULY 4"',
                            image_a=render_scene(scene), image_b=render_scene(scene.with_text("SUMMER FEST\nJULY 7")))
    evidence = await gather_ocr_evidence(comparison, reader)
    assert evidence.requested.strings == ("SUMMER FEST", "JULY 4")
    assert [s.score for s in evidence.a.match.strings] == [1.0, 1.0]
    assert evidence.b.match.strings[0].score == 1.0 and evidence.b.match.strings[1].score < 1.0
    assert decide_pair(evidence).winner == "A"


async def test_an_edit_that_changes_a_sign(reader: OcrReader) -> None:
    scene = Scene("SALE", size=56, canvas=(320, 200), seed=13)
    comparison = Comparison(task="edit", prompt='Replace "SALE" with "OPEN" on the sign',
                            source=render_scene(scene), image_a=render_scene(scene),  # edit not done
                            image_b=render_scene(scene.with_text("OPEN")))
    evidence = await gather_ocr_evidence(comparison, reader)
    assert evidence.requested.old == ("SALE",) and evidence.source.text == "SALE"
    assert evidence.a.match.old_score == 1.0 and evidence.b.match.score == 1.0
    assert decide_pair(evidence).winner == "B"
    block = render_ocr_block(evidence, "AB")
    assert 'Image BASE text read: "SALE"' in block and "Edited Image 2" in block


async def test_no_requested_text_runs_no_ocr(reader: OcrReader, make_image) -> None:
    before = reader.reads
    comparison = Comparison(prompt="a cabin in the woods at night", image_a=make_image((1, 2, 3)),
                            image_b=make_image((4, 5, 6)))
    assert await gather_ocr_evidence(comparison, reader) is None
    sample = await score_sample(comparison.prompt, comparison.image_a, reader)
    assert sample.score is None and sample.read is None
    assert reader.reads == before
    assert decide_pair(None).winner == "invalid"


async def test_a_failed_read_is_unavailable_evidence(reader: OcrReader) -> None:
    good = render_scene(Scene("HELLO", canvas=(320, 200), seed=14))
    corrupt = ImageData(b"not an image at all", "image/png", 8, 8)
    comparison = Comparison(prompt='a sign "HELLO"', image_a=good, image_b=corrupt)
    evidence = await gather_ocr_evidence(comparison, reader)
    assert evidence.a.match.score == 1.0 and evidence.b.match is None
    assert "image B" in evidence.unavailable
    decision = decide_pair(evidence)
    assert decision.winner == "invalid" and "could not be decoded" in decision.invalid_reason
    assert "unavailable (the image could not be decoded" in render_ocr_block(evidence, "AB")
    assert (await score_sample(comparison.prompt, corrupt, reader)).score is None
    assert (await score_sample(comparison.prompt, good, reader)).score == 1.0
