"""The reward service with OCR evidence (the real OCR model): ``/v1/compare`` verdicts carry the
evidence and the policy's outcome, ``/v1/group_rewards`` serves per-sample ``ocr_scores``."""

from __future__ import annotations

import base64

import httpx
import pytest

from arrpo.evidence.ocr import ocr_available
from arrpo.judge_settings import JudgeSettings
from arrpo.testing.scripted_server import Reply
from arrpo.testing.text_images import Scene, render_scene

pytestmark = pytest.mark.skipif(not ocr_available(), reason='needs the ocr extra: pip install "arrpo[ocr]"')


def _first_wins(request) -> Reply:
    return Reply(text='{"rank": [1, 2], "reason": "Image 1 looks better."}')


def _b64(image) -> str:
    return base64.b64encode(image.data).decode("ascii")


def test_the_service_judges_with_evidence_and_serves_per_sample_scores(start_service):
    from arrpo.server import ServiceConfig

    scene = Scene("BOOK SALE", size=44, canvas=(400, 200), seed=70)
    right, wrong = render_scene(scene), render_scene(scene.with_text("BOOK SAIE"))
    service = start_service(_first_wins, config=ServiceConfig(
        judge=JudgeSettings(order="given", evidence=("ocr",), ocr_policy="override")))
    body = {"prompt": 'a banner that says "BOOK SALE"', "image_a": _b64(wrong), "image_b": _b64(right)}
    answer = httpx.post(service.url + "/v1/compare", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    verdict = answer.json()["verdict"]
    assert verdict["winner"] == "B" and verdict["evidence"]["policy"]["vlm_winner"] == "A"
    assert verdict["evidence"]["ocr"]["b"]["match"]["score"] == 1.0 and verdict["prompt_layout"] == "authors"
    assert "OCR evidence (" in service.vlm.seen[0].text
    group = httpx.post(service.url + "/v1/group_rewards", json={
        "prompt": body["prompt"], "images": [_b64(wrong), _b64(right)]}, timeout=120)
    assert group.status_code == 200, group.text
    scores = group.json()["ocr_scores"]
    assert scores[1] == 1.0 and 0.5 < scores[0] < 1.0
    no_text = httpx.post(service.url + "/v1/group_rewards", json={"prompt": "a banner", "images": [_b64(wrong), _b64(right)]},
                         timeout=120)
    assert no_text.json()["ocr_scores"] == [None, None]  # no signal, never 0


def test_a_service_without_evidence_serves_no_ocr_scores(start_service):
    from tests.serve.helpers import b64_png

    service = start_service()
    group = httpx.post(service.url + "/v1/group_rewards", json={"prompt": 'a sign "HI"', "images": [b64_png(200), b64_png(20)]},
                       timeout=60)
    assert group.status_code == 200 and group.json()["ocr_scores"] is None


