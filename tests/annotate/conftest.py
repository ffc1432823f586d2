"""Fixtures for the annotation pages: pair files of coloured images and the real ``arrpo`` server
started as a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

SRC = str(Path(__file__).resolve().parents[2] / "src")
RED, BLUE, GREY = (220, 30, 30), (30, 60, 220), (128, 128, 128)


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_pairs(folder: Path, n: int = 8, *, edit_last: bool = True) -> tuple[Path, dict[str, str]]:
    """A pair file of ``n`` pairs whose intended winner is the red image; returns (file, id → A/B).

    Red sits on A for some pairs and on B for others (a shade per pair keeps the images distinct).
    """
    lines, intended = [], {}
    for i in range(n):
        red = tuple(min(255, c + i) for c in RED)
        blue = tuple(min(255, c + i) for c in BLUE)
        red_on_a = i % 3 != 1
        a, b = (red, blue) if red_on_a else (blue, red)
        record = {"id": f"p{i}", "prompt": f"a red square, number {i}",
                  "image_a": write_png(folder / f"{i}_a.png", a).name,  # type: ignore[arg-type]
                  "image_b": write_png(folder / f"{i}_b.png", b).name}  # type: ignore[arg-type]
        if edit_last and i == n - 1:
            record.update(task="edit", prompt="paint the square red", source=write_png(folder / "src.png", GREY).name)
        lines.append(json.dumps(record))
        intended[record["id"]] = "A" if red_on_a else "B"
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, intended


class PageServer:
    """``python -m arrpo <args>`` as a real process, waited for until ``/health`` answers."""

    def __init__(self, args: list[str], port: int, logs: Path, env: dict[str, str] | None = None):
        self.args, self.port, self.logs, self.extra_env = args, port, logs, env or {}
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 60.0) -> PageServer:
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **self.extra_env}
        self.logs.mkdir(parents=True, exist_ok=True)
        self._err = (self.logs / f"server-{time.monotonic_ns()}.err").open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "arrpo", *self.args, "--port", str(self.port)],
                                     stdout=self._err, stderr=self._err, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {Path(self._err.name).read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("server did not answer /health")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs (what a crash or a closed laptop lid does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._err.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()


@pytest.fixture
def page_server(tmp_path):
    """``page_server(args)`` → a started :class:`PageServer` (stopped after the test)."""
    started: list[PageServer] = []

    def start(args: list[str], port: int | None = None, env: dict[str, str] | None = None) -> PageServer:
        server = PageServer(args, port or free_port(), tmp_path / "logs", env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
