"""Evidence-only decisions, per-sample scores and the three ocr_policy values (pure functions)."""

from __future__ import annotations

import json

import pytest

from arrpo.evidence import (
    OcrEvidence,
    apply_ocr_policy,
    build_evidence,
    decide_pair,
    extract_requested_text,
    sample_score,
)
from arrpo.evidence.values import EvidenceDecision, OcrLine, OcrRead, RequestedText

ASKED = RequestedText(strings=("OPEN LATE",))


def read(*lines: str, sha: str = "0" * 64) -> OcrRead:
    return OcrRead(image_sha256=sha, lines=[OcrLine(text=t, confidence=0.9) for t in lines])


def failed(reason: str = "the image could not be decoded (UnidentifiedImageError)") -> OcrRead:
    return OcrRead(image_sha256="f" * 64, unavailable=reason)


def evidence(a: OcrRead, b: OcrRead, requested: RequestedText = ASKED) -> OcrEvidence:
    return build_evidence(requested, a, b)


def test_the_better_spelling_wins_and_equal_is_a_tie() -> None:
    decision = decide_pair(evidence(read("OPEN LATF"), read("OPEN", "LATE")))
    assert decision.winner == "B" and decision.decisive
    assert decision.score_a == pytest.approx(0.875) and decision.score_b == 1.0
    assert decision.margin == pytest.approx(-0.125)
    tie = decide_pair(evidence(read("open late!"), read("OPEN LATE")))
    assert tie.winner == "tie" and not tie.decisive


def test_decisive_needs_a_margin_and_a_readable_winner() -> None:
    long = RequestedText(strings=("THE QUICK BROWN FOX JUMPS",))  # 21 characters: one typo is 0.048
    slight = decide_pair(evidence(read("THE QUICK BROWN FOX JUMPS"), read("THE QUICK BROWN FOX JUMPZ"), long))
    assert slight.winner == "A" and not slight.decisive
    assert decide_pair(evidence(read("THE QUICK BROWN FOX JUMPS"), read("THE QUICK BROWN FOX JUMPZ"), long),
                       decisive_margin=0.04).decisive
    garbled = decide_pair(evidence(read("0P"), read("xx")))  # both unreadable: 0.25 vs 0.0
    assert garbled.winner == "A" and not garbled.decisive


def test_no_requested_text_or_an_unreadable_image_is_invalid_with_the_reason() -> None:
    assert decide_pair(None).winner == "invalid"
    assert "asks for no text" in decide_pair(None).invalid_reason
    broken = decide_pair(evidence(read("OPEN LATE"), failed()))
    assert broken.winner == "invalid"
    assert "unavailable" in broken.invalid_reason and "image B" in broken.invalid_reason


def test_evidence_records_are_json() -> None:
    record = evidence(read("OPEN LATF"), failed())
    data = json.loads(record.model_dump_json())
    assert data["tool"] == "ocr" and data["b"]["match"] is None and "image B" in data["unavailable"]
    assert OcrEvidence.model_validate(data) == record
    assert record.swapped().a == record.b


def test_sample_score_is_no_signal_without_text_or_reading() -> None:
    assert sample_score(ASKED, read("OPEN LATF")).score == pytest.approx(0.875)
    nothing = sample_score(extract_requested_text("a cabin at night"), None)
    assert nothing.score is None and "no text" in nothing.reason
    unread = sample_score(ASKED, failed())
    assert unread.score is None and "unavailable" in unread.reason
    assert sample_score(ASKED, read()).score == 0.0  # no text read at all is evidence: 0


DECISIVE_B = EvidenceDecision(winner="B", score_a=0.8, score_b=1.0, margin=-0.2, decisive=True)
SLIGHT_B = EvidenceDecision(winner="B", score_a=0.95, score_b=1.0, margin=-0.05, decisive=False)
NONE = EvidenceDecision(winner="invalid", invalid_reason="the prompt asks for no text: no OCR evidence")

# policy, VLM winner, orders_agree, evidence → final winner, decided by
POLICY_TABLE = [
    ("evidence", "A", None, DECISIVE_B, "A", "vlm"),
    ("evidence", "tie", False, DECISIVE_B, "tie", "vlm"),
    ("tiebreak", "A", True, DECISIVE_B, "A", "vlm"),  # the VLM preferred A: kept
    ("tiebreak", "tie", None, DECISIVE_B, "B", "evidence"),
    ("tiebreak", "tie", False, SLIGHT_B, "tie", "vlm"),  # not decisive
    ("tiebreak", "A", False, DECISIVE_B, "B", "evidence"),  # on_disagree=first gave A
    ("tiebreak", "invalid", False, DECISIVE_B, "B", "evidence"),  # on_disagree=invalid
    ("tiebreak", "tie", None, NONE, "tie", "vlm"),
    ("override", "A", True, DECISIVE_B, "B", "evidence"),
    ("override", "A", True, SLIGHT_B, "A", "vlm"),
    ("override", "B", True, DECISIVE_B, "B", "vlm"),  # agrees
    ("override", "tie", None, DECISIVE_B, "B", "evidence"),
    ("override", "A", None, NONE, "A", "vlm"),
    ("override", "invalid", None, DECISIVE_B, "invalid", "vlm"),  # a failed VLM stays failed
    ("tiebreak", "invalid", True, DECISIVE_B, "invalid", "vlm"),
]


@pytest.mark.parametrize(("policy", "vlm", "agree", "decision", "winner", "by"), POLICY_TABLE)
def test_policy_table(policy, vlm, agree, decision, winner, by) -> None:
    outcome = apply_ocr_policy(policy, vlm, decision, orders_agree=agree)
    assert (outcome.winner, outcome.decided_by) == (winner, by)
    assert outcome.vlm_winner == vlm and outcome.changed is (winner != vlm)
    assert outcome.note


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="evidence, tiebreak, override"):
        apply_ocr_policy("majority", "A", DECISIVE_B)  # type: ignore[arg-type]
