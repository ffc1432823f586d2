"""Fixtures for the backend tests: a tiny random LLaVA built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight LLaVA (model + processor + chat template) saved to a temp folder."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from arrpo.testing.tiny_vlm import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model")
