"""The full learn loop against a VLM that sees the images: pass, refine, drop; counts match."""

from __future__ import annotations

import json

import pytest

from arrpo.judge import PairwiseJudge
from arrpo.rubric import Rubric
from arrpo.rubrics import LearnConfig, RubricLearner, read_seeds
from arrpo.rubrics.learn import verifier_feedback
from arrpo.schema import OrderAnswer, Verdict

KINDS = ["first", "refine", "drop", "first", "refine", "first", "drop", "first"]


async def test_learn_loop_counts_and_rubric(seed_dir, seeing, backend_for, tmp_path):
    vlm, server = seeing()
    seeds = read_seeds(seed_dir(KINDS), task="t2i")
    t_max = 3
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=3, t_max=t_max))
    result = await learner.learn(seeds, tmp_path / "state.jsonl")

    by_id = {o.id: o for o in result.outcomes}
    for pair in seeds.pairs:
        kind = pair.id.split("-")[0]
        expected = {"first": "passed_first", "refine": "refined", "drop": "dropped"}[kind]
        assert by_id[pair.id].status == expected, pair.id
    s = result.summary
    assert (s.pairs, s.passed_first, s.refined, s.dropped, s.failed) == (8, 4, 2, 2, 0)
    assert s.rate(s.passed_first) == pytest.approx(0.5)

    # request counts: first = gen + verify; refine = gen + verify + refine + verify;
    # drop = gen + (t_max + 1) verifications + t_max refinements; then one structuring call
    assert vlm.kinds["generate"] == 8
    assert vlm.kinds["refine"] == 2 * 1 + 2 * t_max
    assert vlm.kinds["judge"] == 2 * (4 * 1 + 2 * 2 + 2 * (t_max + 1))  # both orders (the default)
    assert vlm.kinds["structure"] == 1
    assert server.requests == sum(vlm.kinds.values())

    dropped = by_id["drop-2"]
    assert len(dropped.attempts) == t_max + 1 and not any(a.correct for a in dropped.attempts)
    assert dropped.criteria == [] and "not verified" in dropped.note
    refined = by_id["refine-1"]
    assert [a.correct for a in refined.attempts] == [False, True]
    assert "red" in refined.criteria[0]

    rubric = result.rubric
    assert rubric is not None and rubric.task == "t2i"
    titles = [t.theme for t in rubric.themes]
    assert "Bright quality" in titles and "Red quality" in titles
    p = rubric.provenance
    assert (p.pairs, p.passed_first, p.refined, p.dropped, p.k, p.t_max) == (8, 4, 2, 2, 3, t_max)
    assert p.seed_file_sha256 == seeds.sha256 and p.generator_model == "seeing"
    assert p.method == "learned" and p.structure == "model"

    # the learned rubric round-trips and the ordinary judge uses it directly
    path = rubric.save(tmp_path / "rubric.json")
    loaded = Rubric.load(path)
    assert loaded.render() == rubric.render()
    assert json.loads(path.read_text())["rendered"] == rubric.render()
    judge = PairwiseJudge(backend_for(server), rubric=loaded)
    pair = seeds.pairs[0].load()
    comparison = pair.comparison(loaded)
    verdict = await judge.judge(comparison)
    assert verdict.winner == pair.pair.preferred
    assert "Bright quality" in server.seen[-1].text


async def test_both_orders_must_agree(seed_dir, seeing, backend_for, tmp_path):
    vlm, server = seeing()
    seeds = read_seeds(seed_dir(["first", "refine"]), task="t2i")
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=2, verify_order="both"))
    result = await learner.learn(seeds, tmp_path / "state.jsonl")
    assert [o.status for o in result.outcomes] == ["passed_first", "refined"]
    for outcome in result.outcomes:
        assert all(sorted(a.orders) == ["AB", "BA"] for a in outcome.attempts)
    assert vlm.kinds["judge"] == 2 * (1 + 2)


async def test_edit_pairs_show_the_source_image(seed_dir, seeing, backend_for, tmp_path):
    _vlm, server = seeing()
    seeds = read_seeds(seed_dir(["first", "refine"], task="edit"), task="edit")
    learner = RubricLearner(backend_for(server), LearnConfig(task="edit", k=2, t_max=1))
    result = await learner.learn(seeds, tmp_path / "state.jsonl")
    assert [o.status for o in result.outcomes] == ["passed_first", "refined"]
    judge_requests = [r for r in server.seen if '"rank"' in r.text]
    assert judge_requests and all(len(r.image_bytes) == 3 for r in judge_requests)
    assert all("Image BASE" in r.text for r in judge_requests)
    assert result.rubric is not None and result.rubric.task == "edit"


def test_feedback_maps_shown_positions_to_roles():
    answer = OrderAnswer(order="BA", winner="A", reason="Image 1 is brighter.")
    verdict = Verdict(winner="A", answers=[answer])
    text = verifier_feedback(verdict, preferred="B", task="t2i")
    # B was shown first, B is preferred -> Image 1 is the preferred one
    assert "chose the other image" in text and "Image 1 was the preferred image" in text
    tie = verifier_feedback(Verdict(winner="tie", answers=[answer, answer]), "A", "t2i")
    assert "order" in tie


async def test_structuring_records_which_pairs_each_tip_came_from(seed_dir, seeing, backend_for, tmp_path):
    _vlm, server = seeing()
    seeds = read_seeds(seed_dir(["first", "refine", "first", "drop"]), task="t2i")
    state = tmp_path / "state.jsonl"
    result = await RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=1)).learn(seeds, state)
    record = result.structure
    assert record is not None and record["method"] == "model"
    criteria = {c["n"]: c for c in record["criteria"]}
    bright = next(c for c in criteria.values() if "bright" in c["text"])
    assert bright["pairs"] == ["first-0", "first-2"]
    red = next(c for c in criteria.values() if "saturated red" in c["text"])
    assert red["pairs"] == ["refine-1"]
    themes = {t["theme"]: t for t in record["themes"]}
    assert themes["Red quality"]["tips"][0]["sources"] == [red["n"]]
    assert themes["Red quality"]["sources"] == [red["n"]]
    assert all(tip["sources"] is None for tip in themes["General craft"]["tips"])  # the model did not say
    p = result.rubric.provenance
    assert p.tips == sum(len(t.tips) for t in result.rubric.themes)
    assert p.tips_with_sources == 2 and p.tips > 2
    stored = [json.loads(line) for line in state.read_text().splitlines() if '"structure"' in line]
    assert stored[-1] == json.loads(json.dumps(record))


def test_tip_sources_are_validated():
    from arrpo.rubrics.parsing import parse_tip_sources

    reply = json.dumps({"themes": [{"theme": "Light", "tips": [
        {"tip": "Bright.", "from": [2, "1"]}, {"tip": "No haze.", "from": [9]}, {"tip": "Even.", "from": []},
        {"tip": "Warm.", "from": [True]}, "Plain tip."]}]})
    found = parse_tip_sources(reply, 3)
    assert found[("light", "bright.")] == [1, 2]
    assert found[("light", "no haze.")] is None  # criterion 9 does not exist
    assert found[("light", "even.")] is None and found[("light", "warm.")] is None
    assert found[("light", "plain tip.")] is None
