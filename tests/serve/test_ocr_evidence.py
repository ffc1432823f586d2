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




def _serve(app):
    from arrpo.server import ServerThread

    return ServerThread(app, host="127.0.0.1", log_level="warning").start()


def test_an_evidence_only_service_opens_no_backend_and_handles_the_bad_inputs():
    from PIL import Image

    from arrpo.images import load_image
    from arrpo.server import ServiceConfig, create_app

    config = ServiceConfig(judge=JudgeSettings(order="both", evidence=("ocr",), evidence_only=True))
    thread = _serve(create_app(None, config))  # no model anywhere
    scene = Scene("OPEN LATE", size=44, canvas=(420, 200), clutter=3, seed=60)
    right, wrong = render_scene(scene), render_scene(scene.with_text("OMEN LATE"))
    blank = render_scene(Scene(" ", canvas=(320, 200), sign=None, clutter=0))
    huge = render_scene(Scene("OPEN LATE", size=200, canvas=(3000, 1400), jpeg_quality=90, seed=2))
    tiny = load_image(Image.new("RGB", (12, 9), "white"))
    try:
        assert httpx.get(thread.url + "/health", timeout=30).json()["model"] == "none"
        answer = httpx.post(thread.url + "/v1/compare", json={
            "prompt": 'a diner sign that says "OPEN LATE"', "image_a": _b64(wrong), "image_b": _b64(right)}, timeout=120)
        assert answer.status_code == 200, answer.text
        verdict = answer.json()["verdict"]
        assert verdict["winner"] == "B" and verdict["answers"] == [] and verdict["evidence"]["decided_by"] == "evidence"
        no_text = httpx.post(thread.url + "/v1/compare", json={
            "prompt": "a diner at night", "image_a": _b64(wrong), "image_b": _b64(right)}, timeout=120).json()
        assert no_text["verdict"]["winner"] == "invalid" and no_text["verdict"]["evidence"]["ocr"] is None
        group = httpx.post(thread.url + "/v1/group_rewards", json={
            "prompt": 'a sign "OPEN LATE"', "images": [_b64(i) for i in (huge, tiny, blank, wrong)]}, timeout=300)
        assert group.status_code == 200, group.text
        body = group.json()
        assert body["ocr_scores"][0] == 1.0 and body["ocr_scores"][1:3] == [0.0, 0.0]  # nothing read: evidence
        assert 0.5 < body["ocr_scores"][3] < 1.0 and body["rewards"][0] == max(body["rewards"])
    finally:
        thread.stop(timeout=10)
    with pytest.raises(ValueError, match="needs a VLM backend unless its judge is evidence_only"):
        create_app(None, ServiceConfig())


def test_an_ocr_failure_in_the_service_is_unavailable_evidence(start_service, monkeypatch):
    import arrpo.evidence.ocr
    from arrpo.evidence.ocr import OcrReader
    from arrpo.server import ServiceConfig

    def broken():
        def engine(array):
            raise RuntimeError("the model file is damaged")

        return engine

    monkeypatch.setattr(arrpo.evidence.ocr, "_shared", OcrReader(engine_factory=broken, cache_size=0))
    scene = Scene("BOOK SALE", size=44, canvas=(400, 200), seed=70)
    service = start_service(_first_wins, config=ServiceConfig(
        judge=JudgeSettings(order="given", evidence=("ocr",), ocr_policy="override")))
    body = {"prompt": 'a banner that says "BOOK SALE"', "image_a": _b64(render_scene(scene.with_text("BOOK SAIE"))),
            "image_b": _b64(render_scene(scene))}
    verdict = httpx.post(service.url + "/v1/compare", json=body, timeout=120).json()["verdict"]
    assert verdict["winner"] == "A" and verdict["evidence"]["decided_by"] == "vlm"  # the model's answer stands
    assert verdict["evidence"]["unavailable"].startswith("OCR evidence unavailable: image A: the OCR engine failed")
    group = httpx.post(service.url + "/v1/group_rewards", json={"prompt": body["prompt"],
                                                                "images": [body["image_a"], body["image_b"]]}, timeout=120)
    assert group.status_code == 200 and group.json()["ocr_scores"] == [None, None]  # no signal, never 0
