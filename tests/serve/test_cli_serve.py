"""``arrpo serve`` through the real command line: start-up checks, auth, rubric files, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from arrpo.rubric import Rubric, Theme
from tests.serve.helpers import TOKEN, b64_png, slow_brighter_wins

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ARRPO_", "OPENAI_"))}


def arrpo(*args: str, env: dict | None = None, **kwargs):
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, timeout=60, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, env: dict | None = None):
    """Run ``arrpo`` in-process with typer's runner (fast; the subprocess tests cover the real thing)."""
    from typer.testing import CliRunner

    from arrpo.cli import app

    return CliRunner().invoke(app, list(args), env={"ARRPO_SERVE_TOKEN": "", "ARRPO_ENDPOINT": "", **(env or {})})


def test_refuses_0_0_0_0_without_token():
    result = arrpo("serve", "--host", "0.0.0.0", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m")
    assert result.returncode == 2
    assert "refusing to serve the reward service on 0.0.0.0 without a token" in result.stderr


@pytest.mark.parametrize("host", ["::", "10.1.2.3", "example.org"])
def test_refuses_other_non_loopback_hosts_without_token(host):
    result = cli("serve", "--host", host, "--endpoint", "http://127.0.0.1:9/v1", "--model", "m")
    assert result.exit_code == 2
    assert "without a token" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--rubric", "nowhere.json"], "no such file"),
    (["--rubric", "video=x.json"], "must be t2i or edit"),
    (["--order", "sideways"], "Invalid value for '--order'"),
    (["--pairing", "swiss"], "Invalid value for '--pairing'"),
    ([], "No VLM endpoint"),
])
def test_start_up_errors_are_clear(args, message):
    base = [] if not args else ["--endpoint", "http://127.0.0.1:9/v1", "--model", "m"]
    result = cli("serve", "--port", "0", *base, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize("given", [[], ["--pairing", "tournament"]])
def test_pairing_sets_the_services_default(monkeypatch, given):
    import arrpo.server

    served = []
    monkeypatch.setattr(arrpo.server, "run_server", lambda app, *args, **kwargs: served.append(app))
    result = cli("serve", "--port", "0", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", *given)
    assert result.exit_code == 0, result.output
    expected = given[1] if given else "all_pairs"
    assert served[0].state.service.config.pairing == expected
    assert served[0].state.service.health().limits.pairing == expected


def test_serve_end_to_end_with_token_rubric_and_sigterm(scripted_server, tmp_path):
    vlm = scripted_server(slow_brighter_wins(0.0))
    rubric = Rubric(themes=[Theme(theme="Light over dark")], task="t2i").save(tmp_path / "t2i.json")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "arrpo", "serve", "--port", str(port), "--endpoint", vlm.base_url,
         "--model", "scripted", "--no-cache", "--max-retries", "0", "--rubric", str(rubric), "--log-level", "debug"],
        env={**ENV, "ARRPO_SERVE_TOKEN": TOKEN}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "arrpo serve did not start"
            time.sleep(0.1)
        body = {"prompt": "p", "image_a": b64_png(20), "image_b": b64_png(220)}
        assert httpx.post(url + "/v1/compare", json=body).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = httpx.post(url + "/v1/compare", json=body, headers=auth, timeout=30)
        assert response.status_code == 200 and response.json()["verdict"]["winner"] == "B"
        assert response.json()["rubric"]["mode"] == "task"
        assert "Light over dark" in vlm.seen[-1].text

        # SIGTERM while a slow request is in flight: it still gets its answer
        vlm.handler = slow_brighter_wins(1.0)
        results: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: results.append(
            httpx.post(url + "/v1/compare", json=body, headers=auth, timeout=30)))
        worker.start()
        while vlm.in_flight == 0 and time.monotonic() < deadline + 10:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        worker.join(30)
        assert results and results[0].status_code == 200 and results[0].json()["verdict"]["winner"] == "B"
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = process.stdout.read() if process.stdout else ""
    assert "Shutting down" in output or "Finished server process" in output
    assert TOKEN not in output
