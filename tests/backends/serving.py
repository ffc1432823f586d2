"""Run ``transformers serve`` on a saved tiny model for the server tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_command() -> list[str]:
    cli = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    if not Path(cli).exists():
        pytest.skip("the `transformers` CLI is not installed (pip install 'transformers[serving]')")
    return [cli, "serve"]


@contextmanager
def transformers_serve(model_dir: Path, ready_s: float = 90) -> Iterator[str]:
    """Run ``transformers serve`` on a saved model folder (CPU, 127.0.0.1, a free port, offline);
    yields the ``/v1`` base URL and stops the server afterwards (its log is shown on failure)."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    log = (model_dir.parent / "serve.log").open("w+")
    process = subprocess.Popen(
        [*_serve_command(), str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_s
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
                pytest.fail(f"transformers serve not ready after {ready_s:.0f} s:\n{log.read()[-2000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
