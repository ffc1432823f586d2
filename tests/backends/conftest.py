"""Fixtures for the backend tests: tiny random VLMs (LLaVA, Qwen3-VL) built once per session."""

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


def needs_torchvision() -> None:
    """Skip unless torch, transformers and torchvision are importable: the Qwen-VL processors of
    transformers 5 cannot be built without torchvision (CI installs it; see .ci/run)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("torchvision", reason="the Qwen-VL processors need torchvision (installed by .ci/run)")


@pytest.fixture(scope="session")
def tiny_qwen3_vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen3-VL (real config, Qwen3VLProcessor, Qwen2Tokenizer, chat template)."""
    needs_torchvision()
    from arrpo.testing.tiny_qwen import build_tiny_qwen3_vl

    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3-vl") / "model")

