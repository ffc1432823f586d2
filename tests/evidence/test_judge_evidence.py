"""OCR evidence in the judge, with the real OCR model, through the Python API: the block in both
orders and both layouts, one gathering per comparison, the evidence-only judge, each ocr_policy,
and the bad inputs (an OCR failure, a crash while gathering, a prompt with no requested text, the
extra missing)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from arrpo.evidence.decide import NO_TEXT_REASON
from arrpo.evidence.ocr import OcrNotInstalledError, OcrReader
from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.testing.scripted_server import Reply
from arrpo.testing.text_images import Scene, render_scene, typo
from arrpo.vlm import build_backend

from .conftest import needs_ocr

pytestmark = needs_ocr

PROMPT = 'a neon sign that says "OPEN LATE" above a diner door'
SCENE = Scene("OPEN LATE", size=48, canvas=(400, 200), clutter=4, seed=3)
RIGHT = render_scene(SCENE)
WRONG = render_scene(SCENE.with_text(typo(SCENE.text, "substitution", seed=1)))
RIGHT_TOO = render_scene(Scene("OPEN LATE", size=44, canvas=(420, 210), background=(230, 200, 160), seed=8))
FIRST_WINS = '{"rank": [1, 2], "reason": "Image 1 looks better."}'


def _b64(image) -> str:
    return base64.b64encode(image.data).decode("ascii")


def _first_wins(request) -> Reply:
    """A position-biased model: whatever is shown first wins."""
    return Reply(text=FIRST_WINS)


def _judge(server, reader: OcrReader, **settings) -> PairwiseJudge:
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=False)
    return PairwiseJudge(backend, evidence=["ocr"], ocr_reader=reader, **settings)


def _blocks(server) -> list[str]:
    """The evidence block of each request the model saw ('' when there was none)."""
    found = []
    for request in server.seen:
        text = request.texts[-1]
        start = text.find("OCR evidence (")
        found.append("" if start < 0 else text[start:].split("\n\nRequirements:")[0])
    return found


@pytest.mark.parametrize("layout", ["authors", "cached"])
def test_the_block_is_in_both_orders_worded_the_same_with_the_labels_swapped(scripted_server, reader, layout):
    server = scripted_server(_first_wins)
    comparison = Comparison(prompt=PROMPT, image_a=WRONG, image_b=RIGHT)
    verdict = _judge(server, reader, order="both", prompt_layout=layout).judge_sync(comparison)
    # both orders are asked at once: tell them apart by which candidate the request shows first
    bodies = [json.dumps(r.body) for r in server.seen]
    shown_a_first = [body.index(_b64(WRONG)) < body.index(_b64(RIGHT)) for body in bodies]
    assert sorted(shown_a_first) == [False, True]
    blocks = _blocks(server)
    ab, ba = (blocks[0], blocks[1]) if shown_a_first[0] else (blocks[1], blocks[0])
    first = server.seen[0 if shown_a_first[0] else 1]
    assert ab and ba, server.seen[0].texts
    ab_lines, ba_lines = ab.splitlines(), ba.splitlines()
    assert ab_lines[1] == ba_lines[1] == 'Requested text: "OPEN LATE"'
    assert ab_lines[2].removeprefix("Image 1 ") == ba_lines[3].removeprefix("Image 2 ")  # A's line, relabelled
    assert ab_lines[3].removeprefix("Image 2 ") == ba_lines[2].removeprefix("Image 1 ")
    assert "match 1.00" in ab_lines[3] and "match 1.00" not in ab_lines[2]  # B (right) is Image 2 in A|B
    if layout == "cached":  # the block is the request's last part, after the images
        assert first.body["messages"][1]["content"][-1]["text"] == ab
    else:  # after the caption, before the requirements
        text = first.texts[-1]
        assert text.index("Caption: ") < text.index("OCR evidence (") < text.index("Requirements:")
    assert verdict.evidence is not None and verdict.evidence.ocr is not None
    assert verdict.evidence.ocr.b.match.score == 1.0 and verdict.evidence.decision.winner == "B"


def test_evidence_is_gathered_once_per_comparison(scripted_server, reader):
    server = scripted_server(_first_wins)
    fresh = Scene("FRESH BREAD", size=40, canvas=(380, 180), seed=41)
    comparison = Comparison(prompt='a bakery sign "FRESH BREAD"', image_a=render_scene(fresh),
                            image_b=render_scene(fresh.with_text("FRESH BRAED")))
    judge = _judge(server, reader, order="both")
    before = reader.reads
    judge.judge_sync(comparison)
    assert reader.reads - before == 2  # two candidates read once, for both orders
    swapped = judge.judge_sync(comparison.swapped())  # eval's reverse order: the same evidence, swapped
    assert reader.reads - before == 2
    assert swapped.evidence.ocr.a.read.image_sha256 == comparison.image_b.sha256
    assert swapped.evidence.decision.winner == "B"  # the right spelling, now image B


def test_the_evidence_only_judge_asks_no_model(reader):
    judge = PairwiseJudge(None, evidence=["ocr"], evidence_only=True, ocr_reader=reader)  # type: ignore[arg-type]
    typo_loses = judge.judge_sync(Comparison(prompt=PROMPT, image_a=WRONG, image_b=RIGHT, id="p1"))
    assert (typo_loses.id, typo_loses.winner, typo_loses.answers) == ("p1", "B", [])
    assert typo_loses.prompt_layout is None and typo_loses.evidence.decided_by == "evidence"
    assert typo_loses.reason.startswith("B matches the requested text decisively better")
    equal = judge.judge_sync(Comparison(prompt=PROMPT, image_a=RIGHT, image_b=RIGHT_TOO))
    assert equal.winner == "tie", equal.evidence.ocr.b.read.text
    no_text = judge.judge_sync(Comparison(prompt="a diner at night, neon light", image_a=WRONG, image_b=RIGHT))
    assert no_text.winner == "invalid" and no_text.invalid_reason == NO_TEXT_REASON
    assert no_text.evidence.ocr is None


@pytest.mark.parametrize(("policy", "order", "on_disagree", "winner", "decided_by"), [
    ("evidence", "given", "tie", "A", "vlm"),  # the model's (wrong) winner stands: evidence only shown
    ("tiebreak", "given", "tie", "A", "vlm"),  # the model preferred one image: kept
    ("override", "given", "tie", "B", "evidence"),  # decisive evidence replaces it
    ("evidence", "both", "tie", "tie", "vlm"),  # position bias: the orders disagree
    ("tiebreak", "both", "tie", "B", "evidence"),  # ... and the evidence settles it
    ("tiebreak", "both", "invalid", "B", "evidence"),  # whatever on_disagree made of the disagreement
    ("override", "both", "invalid", "B", "evidence"),
])
def test_each_ocr_policy(scripted_server, reader, policy, order, on_disagree, winner, decided_by):
    server = scripted_server(_first_wins)
    judge = _judge(server, reader, order=order, on_disagree=on_disagree, ocr_policy=policy)
    verdict = judge.judge_sync(Comparison(prompt=PROMPT, image_a=WRONG, image_b=RIGHT))
    assert verdict.winner == winner and verdict.evidence.decided_by == decided_by
    outcome = verdict.evidence.policy
    assert outcome.policy == policy and outcome.winner == winner
    assert outcome.vlm_winner == ("A" if order == "given" else "tie" if on_disagree == "tie" else "invalid")
    if decided_by == "evidence":
        assert verdict.invalid_reason is None and verdict.reason.startswith("decided by OCR evidence")
    assert verdict.answers and all(a.raw == FIRST_WINS for a in verdict.answers)  # what the model said stays
    assert all(a.policy is not None and a.policy.vlm_winner == ("A" if a.order == "AB" else "B")
               for a in verdict.answers)


async def test_callers_that_ask_each_order_themselves_get_the_same_judge(scripted_server, reader):
    """Eval asks forward and reverse itself (PairwiseJudge.ask): the policy and the evidence-only
    decision apply there too."""
    server = scripted_server(_first_wins)
    comparison = Comparison(prompt=PROMPT, image_a=WRONG, image_b=RIGHT)
    judge = _judge(server, reader, ocr_policy="override")
    ab, ba = [await judge.ask(comparison, order) for order in ("AB", "BA")]
    assert (ab.winner, ab.policy.vlm_winner, ab.policy.decided_by) == ("B", "A", "evidence")
    assert (ba.winner, ba.policy.vlm_winner, ba.policy.decided_by) == ("B", "B", "vlm")
    only = PairwiseJudge(None, evidence=["ocr"], evidence_only=True, ocr_reader=reader)  # type: ignore[arg-type]
    answers = [await only.ask(comparison, order) for order in ("AB", "BA")]
    assert [(a.winner, a.attempts, a.raw) for a in answers] == [("B", 0, None), ("B", 0, None)]
    assert len(server.seen) == 2  # the evidence-only judge asked nothing


def _broken_engine():
    def engine(image):
        raise RuntimeError("the model file is damaged")

    return engine


def test_an_ocr_failure_is_evidence_unavailable_and_the_model_still_judges(scripted_server, make_image):
    broken = OcrReader(engine_factory=_broken_engine, cache_size=0)
    server = scripted_server(_first_wins)
    verdict = _judge(server, broken, order="given", ocr_policy="override").judge_sync(
        Comparison(prompt=PROMPT, image_a=WRONG, image_b=RIGHT))
    assert verdict.winner == "A" and verdict.evidence.decided_by == "vlm"  # the model's answer, not a crash
    assert verdict.evidence.unavailable.startswith("OCR evidence unavailable: image A: the OCR engine failed")
    assert "unavailable (the OCR engine failed: RuntimeError" in _blocks(server)[0]
    alone = PairwiseJudge(None, evidence=["ocr"], evidence_only=True, ocr_reader=broken).judge_sync(  # type: ignore[arg-type]
        Comparison(prompt=PROMPT, image_a=WRONG, image_b=RIGHT))
    assert alone.winner == "invalid" and alone.invalid_reason.startswith("OCR evidence unavailable")


def test_a_crash_while_gathering_is_recorded_and_judging_goes_on(scripted_server, reader, monkeypatch):
    import arrpo.evidence.gather

    async def crash(comparison, reader, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(arrpo.evidence.gather, "gather_ocr_evidence", crash)
    server = scripted_server(_first_wins)
    verdict = _judge(server, reader, order="given", ocr_policy="override").judge_sync(
        Comparison(prompt=PROMPT, image_a=WRONG, image_b=RIGHT))
    assert verdict.winner == "A" and verdict.evidence.unavailable == "OCR evidence unavailable: RuntimeError: boom"
    assert _blocks(server) == [""]  # nothing to show


def test_a_prompt_with_no_requested_text_runs_no_ocr_and_shows_no_block(scripted_server, reader):
    server = scripted_server(_first_wins)
    before = reader.reads
    fresh = render_scene(Scene("NEVER READ", seed=77))
    verdict = _judge(server, reader, order="given", ocr_policy="override").judge_sync(
        Comparison(prompt="a diner at night", image_a=fresh, image_b=RIGHT))
    assert reader.reads == before and _blocks(server) == [""]
    assert verdict.winner == "A" and verdict.evidence.ocr is None and verdict.evidence.policy is None
    assert verdict.evidence.decision.invalid_reason == NO_TEXT_REASON


async def test_per_sample_scores(reader):
    judge = PairwiseJudge(None, evidence=["ocr"], ocr_reader=reader)  # type: ignore[arg-type]
    right, wrong = await judge.score_samples(PROMPT, [RIGHT, WRONG])
    assert right.score == 1.0 and 0.5 < wrong.score < 1.0
    assert [s.score for s in await judge.score_samples("a diner at night", [RIGHT])] == [None]
    assert await PairwiseJudge(None).score_samples(PROMPT, [RIGHT]) is None  # type: ignore[arg-type]


def test_ocr_evidence_without_the_extra_says_what_to_install(monkeypatch):
    import arrpo.evidence.ocr

    monkeypatch.setattr(arrpo.evidence.ocr, "ocr_available", lambda: False)
    with pytest.raises(OcrNotInstalledError, match=r'pip install "arrpo\[ocr\]"'):
        PairwiseJudge(None, evidence=["ocr"])  # type: ignore[arg-type]
    assert PairwiseJudge(None).ocr_reader is None  # type: ignore[arg-type]  # no evidence: no extra needed


def test_the_judge_imports_and_judges_without_the_extra():
    code = (
        "import sys; sys.modules['rapidocr_onnxruntime'] = None\n"
        "from arrpo.judge import PairwiseJudge\n"
        "from arrpo.evidence import OcrNotInstalledError\n"
        "PairwiseJudge(None, prompt_layout='cached')\n"
        "try:\n    PairwiseJudge(None, evidence=['ocr'])\nexcept OcrNotInstalledError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert 'pip install "arrpo[ocr]"' in done.stdout
