"""Malformed generator and structurer output is repaired, retried or falls back — never a crash."""

from __future__ import annotations

import json

from arrpo.rubrics import LearnConfig, RubricLearner, read_seeds
from arrpo.rubrics.parsing import parse_criteria, parse_themes
from arrpo.rubrics.structure import fallback_themes, pool_criteria

from .seeing_vlm import is_repair


def test_parse_criteria_repairs_common_shapes():
    prose = "Sure! Here are the criteria:\n1. The image is bright.\n2) Colours are vivid.\n- No artifacts.\nHope it helps"
    reply = parse_criteria(prose, 5)
    assert reply.criteria == ["The image is bright.", "Colours are vivid.", "No artifacts."] and reply.repaired
    fenced = '```json\n{"rubrics": [{"criterion": "Rubric 1: Hands are whole."}, "Text is legible",],}\n```'
    assert parse_criteria(fenced, 5).criteria == ["Hands are whole.", "Text is legible"]
    assert parse_criteria('{"criteria": ["a", "b", "c", "d"]}', 2).criteria == ["a", "b"]
    assert parse_criteria('{"criteria": ["same", "Same."]}', 5).criteria == ["same"]
    for bad in ("", "I cannot help with that.", '{"criteria": []}', "<think>hmm"):
        assert parse_criteria(bad, 5).problem


def test_parse_themes_repairs_and_truncates():
    authors = json.dumps({"categories": [{"theme": "Fidelity", "tips": ["a", "b", "c"]}, {"theme": "Light", "tips": "x\ny"}]})
    reply = parse_themes(authors, max_themes=5, max_tips=2)
    assert [(t.theme, t.tips) for t in reply.themes] == [("Fidelity", ["a", "b"]), ("Light", ["x", "y"])]
    assert reply.truncated
    rendered = "Rubric 1:\nTheme: Anatomy\n- Tip1: five fingers\n- Tip2: two eyes\n\nRubric 2:\nTheme: Text\n- Tip1: legible"
    assert [t.theme for t in parse_themes(rendered, 10, 4).themes] == ["Anatomy", "Text"]
    many = json.dumps({"themes": [{"theme": f"T{i}", "tips": []} for i in range(12)]})
    assert len(parse_themes(many, 10, 4).themes) == 10
    assert parse_themes('{"themes": "none"}', 10, 4).problem
    assert parse_themes("no idea", 10, 4).problem


def test_fallback_is_a_deterministic_numbered_list():
    pool = pool_criteria([["b crit", "a crit"], ["a crit.", "c crit"], ["A crit"]])
    assert pool == [("a crit", 3), ("b crit", 1), ("c crit", 1)]
    themes = fallback_themes([t for t, _ in pool], max_themes=1, max_tips=2)
    assert [t.theme for t in themes] == ["a crit", "b crit"]


async def test_generator_garbage_then_valid_is_retried(seed_dir, seeing, backend_for, tmp_path):
    def garbage_first(request, default):
        return default if is_repair(request) else "I think the first one is nicer, honestly."

    vlm, server = seeing({"generate": garbage_first})
    seeds = read_seeds(seed_dir(["first", "first"]), task="t2i")
    result = await RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=0)).learn(
        seeds, tmp_path / "s.jsonl")
    assert [o.status for o in result.outcomes] == ["passed_first", "passed_first"]
    assert vlm.kinds["generate"] == 4
    repairs = [r for r in server.seen if is_repair(r)]
    assert repairs and all("could not be used" in r.messages[-1]["content"][0]["text"] for r in repairs)


async def test_generator_always_garbage_drops_the_pair(seed_dir, seeing, backend_for, tmp_path):
    vlm, server = seeing({"generate": lambda r, d: "```\nnot json at all\n```"})
    seeds = read_seeds(seed_dir(["first", "refine"]), task="t2i")
    result = await RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, parse_retries=2)).learn(
        seeds, tmp_path / "s.jsonl")
    assert [o.status for o in result.outcomes] == ["dropped", "dropped"]
    assert all("generator gave no usable criteria" in o.note for o in result.outcomes)
    assert vlm.kinds["generate"] == 2 * 3 and vlm.kinds["judge"] == 0
    assert result.rubric is None and "no pair was verified" in result.message


async def test_refiner_garbage_drops_after_retries(seed_dir, seeing, backend_for, tmp_path):
    _, server = seeing({"refine": lambda r, d: '{"criteria": 5}'})
    seeds = read_seeds(seed_dir(["refine", "first"]), task="t2i")
    result = await RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=3)).learn(
        seeds, tmp_path / "s.jsonl")
    outcome = result.outcomes[0]
    assert outcome.status == "dropped" and outcome.note.startswith("refiner")
    assert len(outcome.attempts) == 1


async def test_structurer_garbage_falls_back_to_numbered_list(seed_dir, seeing, backend_for, tmp_path):
    vlm, server = seeing({"structure": lambda r, d: "Here is my grouping: brightness matters most."})
    seeds = read_seeds(seed_dir(["first", "refine", "first"]), task="t2i")
    result = await RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=1)).learn(
        seeds, tmp_path / "s.jsonl")
    rubric = result.rubric
    assert rubric is not None and rubric.provenance.structure == "fallback"
    assert "no themes found" in rubric.provenance.structure_problem
    assert vlm.kinds["structure"] == 3  # first try + 2 repairs
    texts = [t.theme for t in rubric.themes]
    # most frequent first: the filler criterion came from all 3 pairs, brightness from 2, red from 1
    assert texts == ["The composition is balanced and uncluttered.",
                     "The image is bright and evenly lit, with no murky shadows.",
                     "The dominant colour of the image is a saturated red."]
    assert all(not t.tips for t in rubric.themes)
    assert "Rubric 1:" in rubric.render()


async def test_structurer_oversized_output_is_cut_to_limits(seed_dir, seeing, backend_for, tmp_path):
    big = json.dumps({"themes": [{"theme": f"Theme {i}", "tips": [f"tip {j}" for j in range(9)]} for i in range(15)]})
    _, server = seeing({"structure": lambda r, d: big})
    seeds = read_seeds(seed_dir(["first"]), task="t2i")
    config = LearnConfig(task="t2i", k=2, t_max=0, max_themes=3, max_tips=2)
    result = await RubricLearner(backend_for(server), config).learn(seeds, tmp_path / "s.jsonl")
    assert [len(t.tips) for t in result.rubric.themes] == [2, 2, 2]
    structure_request = next(r for r in server.seen if "Consolidate" in r.text)
    assert "at most 3 themes" in structure_request.text and "at most 2 tips" in structure_request.text
