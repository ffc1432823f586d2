"""Zero-shot writer: task-level and prompt-level rubrics; prompt-level cached by prompt hash."""

from __future__ import annotations

import asyncio

import pytest

from arrpo.rubric import Rubric, Theme
from arrpo.rubrics import RubricWriteError, RubricWriter

from .seeing_vlm import is_repair


async def test_task_level_rubric(seeing, backend_for):
    _vlm, server = seeing()
    writer = RubricWriter(backend_for(server), max_themes=7, max_tips=3)
    rubric = await writer.write_task("t2i")
    assert rubric.scope == "task" and rubric.task == "t2i" and rubric.prompt is None
    assert rubric.provenance.method == "zero-shot" and rubric.provenance.generator_model == "seeing"
    assert [t.theme for t in rubric.themes][1] == "Visual quality"
    request = server.seen[0].text
    assert "at most 7 themes" in request and "at most 3 tips" in request and "general evaluation rubric" in request
    edit = await writer.write_task("edit")
    assert edit.task == "edit" and "source image" in server.seen[1].text


async def test_prompt_level_rubric_is_cached_by_prompt_hash(seeing, backend_for, tmp_path):
    _vlm, server = seeing()
    cache = tmp_path / "prompt-rubrics"
    writer = RubricWriter(backend_for(server), cache_dir=cache)
    results = await asyncio.gather(*(writer.write_prompt("t2i", "a red fox in snow") for _ in range(5)))
    assert server.requests == 1 and writer.calls == 1
    assert all(r == results[0] for r in results)
    assert results[0].scope == "prompt" and results[0].prompt == "a red fox in snow"
    assert results[0].themes[0].theme == "Fidelity to: a red fox in snow"
    await writer.write_prompt("t2i", "a red fox in snow")
    assert server.requests == 1
    await writer.write_prompt("t2i", "a blue whale")
    assert server.requests == 2
    # a new writer (another process of a training run) reads the folder
    fresh = RubricWriter(backend_for(server), cache_dir=cache)
    again = await fresh.write_prompt("t2i", "a red fox in snow")
    assert server.requests == 2 and again.render() == results[0].render()
    assert len(list(cache.glob("*.json"))) == 2
    # other limits are another request, hence another key
    assert RubricWriter(backend_for(server), max_themes=3).prompt_key("t2i", "x") != fresh.prompt_key("t2i", "x")


async def test_prompt_level_edit_rubric_sends_the_source(seeing, backend_for, make_image):
    _, server = seeing()
    writer = RubricWriter(backend_for(server))
    source = make_image((10, 200, 10))
    rubric = await writer.write_prompt("edit", "make the grass blue", source)
    assert rubric.task == "edit" and rubric.provenance.source_sha256 == source.sha256
    assert len(server.seen[0].image_bytes) == 1 and "Editing instruction: make the grass blue" in server.seen[0].text
    other = await writer.write_prompt("edit", "make the grass blue", make_image((10, 10, 200)))
    assert server.requests == 2 and other.provenance.source_sha256 != source.sha256
    with pytest.raises(ValueError, match="source image"):
        await writer.write_prompt("edit", "x")


async def test_malformed_writer_output_is_repaired_or_reported(seeing, backend_for):
    vlm, server = seeing({"write": lambda r, d: d if is_repair(r) else "Theme ideas: fidelity, quality"})
    writer = RubricWriter(backend_for(server))
    rubric = await writer.write_task("t2i")
    assert len(rubric.themes) == 2 and vlm.kinds["write"] == 2

    _, broken = seeing({"write": lambda r, d: "no"})
    writer = RubricWriter(backend_for(broken), retries=1)
    with pytest.raises(RubricWriteError, match="no themes found"):
        await writer.write_task("t2i")
    fallback = Rubric(themes=[Theme(theme="Overall quality")])
    assert await writer.write_prompt("t2i", "a cat", fallback=fallback) is fallback
    assert broken.requests == 4  # fallbacks are not cached: the next call asks again
    assert await writer.write_prompt("t2i", "a cat", fallback=fallback) is fallback
    assert broken.requests == 6


def test_sync_wrappers(seeing, backend_for):
    _, server = seeing()
    writer = RubricWriter(backend_for(server))
    assert writer.write_task_sync("t2i").scope == "task"
    assert writer.write_prompt_sync("t2i", "a cat").prompt == "a cat"
