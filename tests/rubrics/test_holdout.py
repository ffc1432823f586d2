"""Held-out validation: ``arrpo rubric learn --holdout`` and ``arrpo rubric validate`` through the CLI."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from arrpo.cli import app
from arrpo.eval.validate import pairs_digest
from arrpo.rubric import Rubric
from arrpo.rubrics.holdout import HoldoutError, parse_holdout, split_holdout

runner = CliRunner()
KINDS = ["first", "refine", "drop", "first", "refine", "first", "first", "drop", "first", "refine"]


def _backend(server, tmp_path, cache="c.sqlite"):
    return ["--endpoint", server.base_url, "--model", "seeing", "--cache-path", str(tmp_path / cache)]


def test_parse_holdout():
    assert parse_holdout("20") == 20 and parse_holdout("0.2") == 0.2 and parse_holdout("25%") == 0.25
    for bad in ("0", "-3", "1.5", "abc", "150%"):
        with pytest.raises(HoldoutError):
            parse_holdout(bad)


def test_split_is_disjoint_reproducible_order_free_and_stratified():
    pairs = [SimpleNamespace(id=f"p{i}", task="t2i", subset="small" if i < 20 else "large") for i in range(100)]
    learn, held = split_holdout(pairs, 0.2, seed=3)
    assert len(held) == 20 and len(learn) == 80
    assert not {p.id for p in learn} & {p.id for p in held}
    assert {p.id for p in learn} | {p.id for p in held} == {p.id for p in pairs}
    assert Counter(p.subset for p in held) == {"small": 4, "large": 16}
    again = split_holdout(list(reversed(pairs)), 0.2, seed=3)[1]
    assert {p.id for p in again} == {p.id for p in held}  # the file order does not matter
    other = split_holdout(pairs, 0.2, seed=4)[1]
    assert {p.id for p in other} != {p.id for p in held}
    with pytest.raises(HoldoutError, match="none to learn"):
        split_holdout(pairs[:3], 3)


def _learn(seed_dir, server, tmp_path, out, *extra):
    seeds = seed_dir(KINDS)
    args = ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "2", "--t-max", "2",
            "--out", str(out), "--holdout", "30%", "--bootstrap", "200", *extra, *_backend(server, tmp_path)]
    return seeds, runner.invoke(app, args, env={"COLUMNS": "220"})


def test_learn_with_holdout_validates_through_the_eval_pipeline(seed_dir, seeing, tmp_path):
    vlm, server = seeing()
    out = tmp_path / "run" / "rubric.json"
    _seeds, result = _learn(seed_dir, server, tmp_path, out)
    assert result.exit_code == 0, result.output
    assert "holding out 3 of 10 pairs" in result.output and "held-out pairs (3)" in result.output

    # the held-out pairs never reached learning
    holdout_dir = tmp_path / "run" / "rubric.holdout"
    held_ids = [json.loads(line)["id"] for line in (holdout_dir / "heldout.jsonl").read_text().splitlines()]
    assert len(held_ids) == 3
    state = [json.loads(line) for line in (tmp_path / "run" / "rubric.json.state.jsonl").read_text().splitlines()]
    learned_ids = {r["id"] for r in state if r["kind"] == "pair"}
    assert len(learned_ids) == 7 and not learned_ids & set(held_ids)
    captions = {f"caption number {int(i.split('-')[1])} " for i in held_ids}
    for request in server.seen:
        if '"criteria"' in request.text:  # generator and refiner requests
            assert not any(c in request.text for c in captions)

    # provenance carries the measurement
    rubric = Rubric.load(out)
    held = rubric.provenance.holdout
    assert held["pairs"] == 3 and held["model"] == "seeing" and set(held["held_out_ids"]) == set(held_ids)
    assert set(held["judges"]) == {"direct", "zero-shot", "learned"}
    for values in held["judges"].values():
        assert values["judged"] == 3 and 0 <= values["mean"] <= 1 and "mean" in values["intervals"]
    rows = [json.loads(line) for line in (holdout_dir / "heldout.jsonl").read_text().splitlines()]
    assert held["pairs_sha256"] == pairs_digest(rows)
    assert vlm.kinds["write"] == 1  # the zero-shot rubric
    shown = runner.invoke(app, ["rubric", "show", str(out)], env={"COLUMNS": "200"})
    learned = held["judges"]["learned"]
    assert shown.exit_code == 0 and "3 pairs, model seeing" in shown.output
    assert f"learned: mean {100 * learned['mean']:.1f}%" in shown.output and "{'" not in shown.output

    # the same split again: nothing new is asked (learning state, verdict files and zero-shot rubric reused)
    before = server.requests
    _, again = _learn(seed_dir, server, tmp_path, out)
    assert again.exit_code == 0, again.output
    assert server.requests == before  # the structuring call is answered by the response cache
    assert Rubric.load(out).provenance.holdout["judges"] == held["judges"]
    assert [json.loads(line)["id"] for line in (holdout_dir / "heldout.jsonl").read_text().splitlines()] == held_ids

    # the table equals `arrpo eval` on the same pairs and judges
    other = tmp_path / "eval-run"
    evaluated = runner.invoke(app, ["eval", "--dataset", f"jsonl:{holdout_dir / 'heldout.jsonl'}",
                                    "--judge", str(holdout_dir / "judges.yaml"), "--out", str(other),
                                    "--bootstrap", "200", "--no-progress",
                                    *_backend(server, tmp_path, "other.sqlite")])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((other / "metrics.json").read_text())
    for name, values in held["judges"].items():
        overall = metrics["judges"][name]["overall"]
        for key in ("forward", "reverse", "mean", "delta", "consistency", "tie_rate", "invalid_rate"):
            assert overall["values"][key] == pytest.approx(values[key]), (name, key)
        assert overall["intervals"]["mean"] == pytest.approx(values["intervals"]["mean"])


def test_validate_an_existing_rubric(seed_dir, seeing, tmp_path):
    vlm, server = seeing()
    out = tmp_path / "rubric.json"
    seeds = seed_dir(KINDS)
    learned = runner.invoke(app, ["rubric", "learn", "--pairs", str(seeds), "--task", "t2i", "--k", "2",
                                  "--t-max", "2", "--out", str(out), *_backend(server, tmp_path)])
    assert learned.exit_code == 0, learned.output
    args = ["rubric", "validate", str(out), "--pairs", str(seeds), "--against", "direct", "--bootstrap", "100",
            "--record", *_backend(server, tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    assert "direct" in result.output and "learned" in result.output
    run_dir = tmp_path / "rubric.validation"
    assert json.loads((run_dir / "run.json").read_text())["judges"][0]["name"] == "direct"
    assert not (run_dir / "zero-shot-t2i.json").exists() and vlm.kinds["write"] == 0
    validation = Rubric.load(out).provenance.validation
    assert validation["pairs"] == 10 and set(validation["judges"]) == {"direct", "learned"}
    # the seeing VLM judges by the learned criteria: the learned rubric is right on more pairs than no rubric
    assert validation["judges"]["learned"]["mean"] > validation["judges"]["direct"]["mean"]
    bad = runner.invoke(app, ["rubric", "validate", str(out), "--pairs", str(seeds), "--against", "oracle",
                              *_backend(server, tmp_path)])
    assert bad.exit_code == 2 and "--against" in bad.output


def test_a_failed_holdout_comparison_keeps_the_rubric_and_resumes(seed_dir, seeing, tmp_path):
    from arrpo.testing.scripted_server import Reply

    broken = {"on": True}

    def write(request, default):
        return Reply(text=None, status=500) if broken["on"] else default

    _, server = seeing({"write": write})
    out = tmp_path / "rubric.json"
    _, result = _learn(seed_dir, server, tmp_path, out, "--max-retries", "0")
    assert result.exit_code == 1, result.output
    assert "held-out comparison failed" in result.output.replace("\n", " ")
    assert Rubric.load(out).provenance.model_dump().get("holdout") is None
    assert (tmp_path / "report.html").exists()
    broken["on"] = False
    _, again = _learn(seed_dir, server, tmp_path, out)
    assert again.exit_code == 0, again.output
    assert Rubric.load(out).provenance.holdout["pairs"] == 3


def test_a_changed_rubric_sets_its_old_verdicts_aside(seed_dir, seeing, tmp_path):
    _, server = seeing()
    seeds = seed_dir(KINDS[:4])
    first, second = tmp_path / "bright.json", tmp_path / "red.json"
    Rubric.from_criteria(["The image is bright."], task="t2i").save(first)
    Rubric.from_criteria(["The image is a saturated red."], task="t2i").save(second)
    run_dir = tmp_path / "v"
    for rubric in (first, second):
        result = runner.invoke(app, ["rubric", "validate", str(rubric), "--pairs", str(seeds), "--against", "direct",
                                     "--out", str(run_dir), "--bootstrap", "0", *_backend(server, tmp_path)],
                               env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    message = " ".join(result.output.split())
    assert "judge 'learned' changed since the last run (its rubric text)" in message and "set aside" in message
    stale = list((run_dir / "verdicts").glob("learned.stale-*.jsonl"))
    assert len(stale) == 1 and len(stale[0].read_text().splitlines()) == 4
    assert not list((run_dir / "verdicts").glob("direct.stale-*"))  # the unchanged judge is resumed
    assert len((run_dir / "verdicts" / "learned.jsonl").read_text().splitlines()) == 4


def test_changed_judge_templates_set_old_verdicts_aside(seed_dir, seeing, tmp_path, monkeypatch):
    import arrpo.eval.runner
    import arrpo.judge

    _, server = seeing()
    seeds = seed_dir(KINDS[:4])
    rubric = tmp_path / "bright.json"
    Rubric.from_criteria(["The image is bright."], task="t2i").save(rubric)
    run_dir = tmp_path / "v"
    args = ["rubric", "validate", str(rubric), "--pairs", str(seeds), "--against", "direct", "--out", str(run_dir),
            "--bootstrap", "0", *_backend(server, tmp_path)]
    assert runner.invoke(app, args, env={"COLUMNS": "200"}).exit_code == 0
    for module in (arrpo.judge, arrpo.eval.runner):  # as after an upgrade that reworded judge.j2
        monkeypatch.setattr(module, "judge_prompts_sha256", lambda: "other wording")
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert {p.name.split(".")[0] for p in (run_dir / "verdicts").glob("*.stale-*.jsonl")} == {"learned", "direct"}
    assert len((run_dir / "verdicts" / "learned.jsonl").read_text().splitlines()) == 4


def test_pairs_digest_is_by_content_not_by_path(tmp_path):
    """The held-out digest names the pairs, not the folder they sit in: the same images copied
    elsewhere give the same digest; a changed image, label or prompt gives another."""
    first, second = tmp_path / "one", tmp_path / "two"
    for folder in (first, second):
        folder.mkdir()
        (folder / "a.png").write_bytes(b"image a")
        (folder / "b.png").write_bytes(b"image b")

    def rows(folder, **change):
        row = {"id": "p1", "task": "t2i", "prompt": "a cat", "image_a": str(folder / "a.png"),
               "image_b": str(folder / "b.png"), "label": "A", "subset": "all"}
        return [{**row, **change}]

    assert pairs_digest(rows(first)) == pairs_digest(rows(second))
    assert pairs_digest(rows(first)) != pairs_digest(rows(first, label="B"))
    assert pairs_digest(rows(first)) != pairs_digest(rows(first, prompt="a dog"))
    (second / "b.png").write_bytes(b"another image b")
    assert pairs_digest(rows(first)) != pairs_digest(rows(second))
    missing = rows(tmp_path / "nowhere")  # unreadable images keep their paths: still a digest
    assert pairs_digest(missing) != pairs_digest(rows(first))


def test_learn_takes_the_ask_settings_for_learning_and_the_held_out_judges(seed_dir, seeing, tmp_path):
    """``rubric learn``'s judge options (the ask settings, named as their keys): temperature and
    max_tokens are the learning run's (in its state fingerprint) and every held-out judge's; the
    others are the held-out judges' (their judges.yaml)."""
    import yaml

    from arrpo.judge_settings import AskSettings

    _, server = seeing()
    out = tmp_path / "run" / "rubric.json"
    _seeds, result = _learn(seed_dir, server, tmp_path, out, "--temperature", "0.3", "--max-tokens", "700",
                            "--prompt-layout", "cached", "--parse-retries", "2")
    assert result.exit_code == 0, result.output
    state = [json.loads(line) for line in (tmp_path / "run" / "rubric.json.state.jsonl").read_text().splitlines()]
    header = next(r for r in state if r.get("kind") == "header")
    assert header["fingerprint"]["temperature"] == 0.3 and header["fingerprint"]["max_tokens"] == 700
    expected = AskSettings(temperature=0.3, max_tokens=700, prompt_layout="cached",
                           parse_retries=2).model_dump(mode="json")
    judges = yaml.safe_load((tmp_path / "run" / "rubric.holdout" / "judges.yaml").read_text())["judges"]
    assert {j["name"] for j in judges} == {"direct", "zero-shot", "learned"}
    for judge in judges:
        assert {key: judge[key] for key in expected} == expected, judge["name"]
    learning = [r for r in server.seen if '"criteria"' in r.text]
    assert learning and all(r.body["temperature"] == 0.3 and r.body["max_tokens"] == 700 for r in learning)
