"""Fixtures for the rubric tests: seed folders of coloured images and a VLM that sees them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from arrpo.vlm import build_backend

from .seeing_vlm import SeeingVLM

#: (preferred colour, other colour) per scenario; the seeing VLM passes, refines or drops them.
SCENARIOS = {
    "first": ((230, 230, 230), (40, 40, 40)),     # brighter wins: passes first time
    "refine": ((200, 30, 30), (120, 120, 120)),   # redder but darker: passes after refinement
    "drop": ((10, 10, 10), (200, 200, 200)),      # worse on every feature: dropped
}


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (24, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def _shift(color: tuple[int, int, int], i: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + (i % 5))) for c in color)  # type: ignore[return-value]


@pytest.fixture
def seed_dir(tmp_path: Path) -> Callable[..., Path]:
    """``seed_dir(["first", "refine", "drop", ...], task="t2i")`` → path of a project JSONL seed file.

    The preferred image alternates between A and B; every pair has its own caption and images.
    """

    def make(kinds: list[str], task: str = "t2i", name: str = "seeds") -> Path:
        root = tmp_path / name
        lines = []
        for i, kind in enumerate(kinds):
            good, bad = (_shift(c, i) for c in SCENARIOS[kind])
            a_preferred = i % 2 == 0
            a, b = (good, bad) if a_preferred else (bad, good)
            record = {
                "id": f"{kind}-{i}",
                "prompt": f"caption number {i} ({kind})",
                "image_a": write_png(root / f"{i}_a.png", a).name,
                "image_b": write_png(root / f"{i}_b.png", b).name,
                "label": "A" if a_preferred else "B",
            }
            if task == "edit":
                record.update(task="edit", source=write_png(root / f"{i}_src.png", (90, 90, 90)).name)
            lines.append(json.dumps(record))
        path = root / "seeds.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return path

    return make


@pytest.fixture
def seeing(scripted_server):
    """``seeing(overrides=None)`` → (handler, server) with a started server."""

    def start(overrides=None):
        vlm = SeeingVLM(overrides)
        return vlm, scripted_server(vlm)

    return start


@pytest.fixture
def backend_for():
    """``backend_for(server, cache_path=False)`` → the real OpenAI-compatible backend, wrapped."""
    opened = []

    def make(server, cache_path=False, retries: int = 0):
        backend = build_backend(server.base_url, "seeing", cache_path=cache_path, max_retries=retries,
                                retry_base_delay=0.01, timeout=20)
        opened.append(backend)
        return backend

    return make
