"""The real third-party server: ``transformers serve`` hosting the tiny LLaVA, driven by arrpo's
OpenAI-compatible client and the judge. Its answers are random text, so every verdict must end
``invalid`` with a reason — and nothing may crash."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm import Message, VLMRequest, build_backend


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_command() -> list[str]:
    cli = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    if not Path(cli).exists():
        pytest.skip("the `transformers` CLI is not installed (pip install 'transformers[serving]')")
    return [cli, "serve"]


@pytest.fixture(scope="module")
def served_tiny_llava(tiny_llava_dir):
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    log = (tiny_llava_dir.parent / "serve.log").open("w+")
    process = subprocess.Popen(
        [*_serve_command(), str(tiny_llava_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"transformers serve exited with {process.returncode}:\n{log.read()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"transformers serve not ready after 60 s:\n{log.read()[-2000:]}")
            time.sleep(0.5)
        yield base_url, str(tiny_llava_dir)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_two_images_and_text_reach_the_served_model(served_tiny_llava, make_image):
    base_url, model = served_tiny_llava
    backend = build_backend(base_url, model, cache_path=False, max_retries=0)
    request = VLMRequest(
        messages=(Message.user("Image 1:", make_image((255, 0, 0)), "Image 2:", make_image((0, 0, 255)), "Which?"),),
        max_tokens=8,
    )
    from arrpo._sync import run_sync

    response = run_sync(backend.complete(request))
    assert isinstance(response.text, str)
    assert response.usage.prompt_tokens > 2 * 16  # both images became patch tokens on the server


def test_judge_over_transformers_serve_ends_invalid_without_crashing(served_tiny_llava, make_image):
    base_url, model = served_tiny_llava
    backend = build_backend(base_url, model, cache_path=False, max_retries=1, timeout=60)
    judge = PairwiseJudge(backend, order="both", max_tokens=16)
    comparisons = [
        Comparison(prompt="a red bicycle", image_a=make_image((255, 0, 0)), image_b=make_image((0, 0, 255)), id="t2i"),
        Comparison(task="edit", prompt="make it green", image_a=make_image((0, 255, 0)),
                   image_b=make_image((9, 9, 9)), source=make_image((200, 0, 0)), id="edit"),
    ]
    verdicts = judge.judge_many_sync(comparisons)
    assert [v.id for v in verdicts] == ["t2i", "edit"]
    for verdict in verdicts:
        assert verdict.winner == "invalid"
        assert verdict.invalid_reason
        assert len(verdict.answers) == 2
        assert all(a.raw is not None and not (a.invalid_reason or "").startswith("backend") for a in verdict.answers)
