"""Two byte-identical candidates carry no preference: ``PairwiseJudge.judge`` gives a ``tie``
without asking the model (a real VLM could only answer with its position bias), so the Python API,
``arrpo judge``, ``arrpo eval`` and the reward service (tests/serve/test_identical_images.py) all
save the call."""

from __future__ import annotations

import json
import shutil

from PIL import Image

from arrpo.images import load_image
from arrpo.judge import IDENTICAL_IMAGES, PairwiseJudge
from arrpo.schema import Comparison
from arrpo.testing.scripted_server import Reply
from arrpo.vlm import build_backend
from tests.core.test_cli_judge import arrpo
from tests.eval.helpers import png_bytes
from tests.eval.test_runner import cli, records, write_config


def always_first(_request) -> Reply:
    return Reply(text='{"rank": [1, 2], "reason": "Image 1, by position"}')


def test_python_api_ties_identical_candidates_under_every_order_policy(scripted_server):
    server = scripted_server(always_first)
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=False)
    same = load_image(png_bytes((90, 90, 90)))
    copy = load_image(bytes(same.data))  # equal bytes loaded twice: still the same image
    other = load_image(png_bytes((200, 10, 10)))
    for order in ("given", "random", "both"):
        judge = PairwiseJudge(backend, order=order)
        verdict = judge.judge_sync(Comparison(prompt="a cat", image_a=same, image_b=copy, id="dup"))
        assert verdict.winner == "tie" and verdict.reason == IDENTICAL_IMAGES and verdict.id == "dup"
        assert verdict.answers and all(a.winner == "tie" and a.attempts == 0 for a in verdict.answers)
        assert verdict.invalid_reason is None
    assert server.requests == 0
    many = PairwiseJudge(backend, order="given").judge_many_sync(
        [Comparison(prompt="p", image_a=same, image_b=same), Comparison(prompt="p", image_a=same, image_b=other)])
    assert [v.winner for v in many] == ["tie", "A"] and server.requests == 1
    edit = PairwiseJudge(backend).judge_sync(
        Comparison(task="edit", prompt="brighten", image_a=same, image_b=copy, source=other))
    assert edit.winner == "tie" and server.requests == 1


def test_arrpo_judge_prints_a_tie_for_one_image_given_twice(scripted_server, tmp_path):
    server = scripted_server(always_first)
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes((90, 90, 90)))
    shutil.copy(image, tmp_path / "copy.png")
    result = arrpo("judge", str(image), str(tmp_path / "copy.png"), "--prompt", "a cat", "--json",
                   "--endpoint", server.base_url, "--model", "m", "--no-cache")
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["winner"] == "tie" and "identical" in verdict["reason"]
    assert server.requests == 0


def test_arrpo_eval_records_identical_pairs_as_ties_without_a_model_call(scripted_server, tmp_path):
    server = scripted_server(always_first)
    (tmp_path / "same.png").write_bytes(png_bytes((90, 90, 90)))
    (tmp_path / "red.png").write_bytes(png_bytes((200, 10, 10)))
    Image.open(tmp_path / "same.png").save(tmp_path / "resaved.png", compress_level=0)  # other bytes: judged
    lines = [
        {"id": "dup", "prompt": "a cat", "image_a": "same.png", "image_b": "same.png", "label": "A"},
        {"id": "pixels", "prompt": "a cat", "image_a": "same.png", "image_b": "resaved.png", "label": "A"},
        {"id": "real", "prompt": "a cat", "image_a": "red.png", "image_b": "same.png", "label": "A"},
    ]
    dataset = tmp_path / "pairs.jsonl"
    dataset.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = write_config(tmp_path, server.base_url, "  - {name: direct, kind: direct}\n")
    out = tmp_path / "run"
    result = cli("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out),
                 "--bootstrap", "20", "--no-progress")
    assert result.returncode == 0, result.stderr
    by_id = {r["id"]: r for r in records(out, "direct")}
    for side in ("forward", "reverse"):
        assert by_id["dup"][side]["winner"] == "tie" and by_id["dup"][side]["attempts"] == 0
    asked = [r for r in server.seen if "a cat" in r.text]
    assert len(asked) == 4  # both orders of "pixels" and "real"; none of "dup"
