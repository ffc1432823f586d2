"""Decisions from OCR evidence: the evidence-only pair decision, the per-sample score, and the
``ocr_policy`` that combines evidence with a VLM's winner. Pure functions.

Scores are the candidates' match scores (:class:`~arrpo.evidence.values.CandidateMatch`:
1 − normalised edit distance, pooled over the requested strings; 1.0 = every requested string
read exactly, case, spaces and punctuation aside).

**Evidence-only decision** (:func:`decide_pair`): the higher score wins; equal scores are a
tie; no evidence is ``invalid`` — the prompt asks for no text, or an image could not be read.

**Decisive** evidence: a winner whose score leads by at least ``decisive_margin`` *and* reaches
``min_score`` itself. The margin keeps one misread character of OCR noise on a long text from
overturning a VLM; the minimum keeps two failed readings (stylised text the OCR model cannot
read at all: 0.2 against 0.3) from counting as evidence.

**Policies** (:func:`apply_ocr_policy`), when a VLM judged the pair too:

* ``evidence`` — the block is shown to the VLM and recorded; the VLM's winner stands.
* ``tiebreak`` — the VLM's winner stands unless the VLM gave no preference — a ``tie``, or
  orders that disagree (``orders_agree`` False, whatever ``on_disagree`` made of it) — and the
  evidence is decisive: then the evidence's winner is taken.
* ``override`` — decisive evidence replaces the VLM's winner (A, B, tie, or a disagreement);
  otherwise the VLM's winner stands.

Under every policy a VLM verdict that is ``invalid`` for another reason than disagreeing orders
(the backend failed, the answer was unusable) stays ``invalid``: the evidence does not stand in
for a judge that did not answer (use the evidence-only judge for that).
"""

from __future__ import annotations

from typing import get_args

from arrpo.evidence.matching import match_candidate
from arrpo.evidence.values import (
    EvidenceDecision,
    OcrEvidence,
    OcrPolicy,
    OcrRead,
    PolicyOutcome,
    RequestedText,
    SampleScore,
    Winner,
)

OCR_POLICIES: tuple[str, ...] = get_args(OcrPolicy)
#: Lead (in score) a winner needs for the evidence to be decisive: one wrong character in a
#: text of up to 20 characters (it costs 1/n). On the rendered pairs of benchmarks/ocr_evidence.py
#: 0.05 made 97% of the pairs decisive, all of them right; 0.1 only 71%.
DEFAULT_DECISIVE_MARGIN = 0.05
#: Score the winner itself needs for the evidence to be decisive.
DEFAULT_MIN_SCORE = 0.5
#: Scores closer than this are equal (a tie).
TIE_TOLERANCE = 1e-9

NO_TEXT_REASON = "the prompt asks for no text: no OCR evidence"


def decide_pair(
    evidence: OcrEvidence | None,
    *,
    decisive_margin: float = DEFAULT_DECISIVE_MARGIN,
    min_score: float = DEFAULT_MIN_SCORE,
) -> EvidenceDecision:
    """What the evidence alone says about a pair (``evidence=None``: the prompt asks for no text)."""
    if evidence is None or not evidence.requested.asks_for_text:
        return EvidenceDecision(winner="invalid", invalid_reason=NO_TEXT_REASON)
    if evidence.unavailable is not None or evidence.a.match is None or evidence.b.match is None:
        reason = evidence.unavailable or "an image could not be read"
        return EvidenceDecision(winner="invalid", invalid_reason=f"OCR evidence unavailable: {reason}")
    a, b = evidence.a.match.score, evidence.b.match.score
    margin = a - b
    if abs(margin) < TIE_TOLERANCE:
        return EvidenceDecision(winner="tie", score_a=a, score_b=b, margin=0.0,
                                reason=f"both images match the requested text equally ({a:.2f})")
    winner: Winner = "A" if margin > 0 else "B"
    best = max(a, b)
    decisive = abs(margin) >= decisive_margin - TIE_TOLERANCE and best >= min_score
    strength = "decisively" if decisive else "slightly"
    return EvidenceDecision(
        winner=winner, score_a=a, score_b=b, margin=margin, decisive=decisive,
        reason=f"{winner} matches the requested text {strength} better (A {a:.2f}, B {b:.2f})",
    )


def apply_ocr_policy(
    policy: OcrPolicy,
    vlm_winner: Winner,
    decision: EvidenceDecision,
    *,
    orders_agree: bool | None = None,
) -> PolicyOutcome:
    """The winner under ``policy`` given a VLM's winner and the evidence (see the module docstring)."""
    if policy not in OCR_POLICIES:
        raise ValueError(f"ocr_policy must be one of {', '.join(OCR_POLICIES)}, not {policy!r}")
    disagreed = orders_agree is False
    if vlm_winner == "invalid" and not disagreed:
        return _kept(policy, vlm_winner, "the VLM verdict is invalid; evidence does not replace it")
    if policy == "evidence":
        return _kept(policy, vlm_winner, "evidence shown to the VLM only")
    if not decision.decisive:
        return _kept(policy, vlm_winner, "evidence not decisive")
    undecided = vlm_winner == "tie" or disagreed
    if policy == "tiebreak" and not undecided:
        return _kept(policy, vlm_winner, "the VLM preferred one image; tiebreak keeps it")
    if decision.winner == vlm_winner:
        return _kept(policy, vlm_winner, "evidence agrees with the VLM")
    what = "orders disagreed" if disagreed else f"VLM said {vlm_winner}"
    return PolicyOutcome(policy=policy, winner=decision.winner, vlm_winner=vlm_winner,
                         decided_by="evidence", note=f"{what}; decisive evidence for {decision.winner}")


def _kept(policy: OcrPolicy, vlm_winner: Winner, note: str) -> PolicyOutcome:
    return PolicyOutcome(policy=policy, winner=vlm_winner, vlm_winner=vlm_winner, decided_by="vlm", note=note)


def sample_score(requested: RequestedText, read: OcrRead | None) -> SampleScore:
    """The per-sample OCR score of one image: ``None`` (no signal) when the prompt asks for no
    text or the image could not be read."""
    if not requested.asks_for_text:
        return SampleScore(score=None, requested=requested, read=read, reason=NO_TEXT_REASON)
    if read is None or not read.ok:
        reason = read.unavailable if read is not None else "the image was not read"
        return SampleScore(score=None, requested=requested, read=read,
                           reason=f"OCR evidence unavailable: {reason}")
    match = match_candidate(requested.strings, [line.text for line in read.lines], requested.old)
    return SampleScore(score=match.score, requested=requested, read=read, match=match)
