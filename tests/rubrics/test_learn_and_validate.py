"""``learn_and_validate`` and ``validate_rubric`` called from Python (no CLI): the held-out pairs and
the judge configurations reach the eval runner in memory; the files stay only as a record."""

from __future__ import annotations

import json

import pytest

from arrpo.eval.validate import holdout_dir, learn_and_validate, validate_rubric
from arrpo.rubric import Rubric
from arrpo.rubrics import LearnConfig, RubricLearner, read_seeds
from arrpo.rubrics.holdout import split_holdout

KINDS = ["first", "refine", "drop", "first", "refine", "first", "first", "drop", "first", "refine"]


@pytest.fixture
def no_reading_back(monkeypatch):
    """Make reading a dataset or a judge file fail: validation must not read its own files back."""
    import arrpo.datasets
    import arrpo.eval.config

    def refuse(*args, **kwargs):
        raise AssertionError("the validation read a file back instead of passing it in memory")

    monkeypatch.setattr(arrpo.datasets, "load_dataset", refuse)
    monkeypatch.setattr(arrpo.eval.config, "load_config", refuse)


async def test_learn_and_validate_from_python(seed_dir, seeing, backend_for, tmp_path, no_reading_back):
    _, server = seeing()
    seeds = read_seeds(seed_dir(KINDS), task="t2i")
    seeds.pairs, held = split_holdout(seeds.pairs, 0.3, 0)
    out = tmp_path / "rubric.json"
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=2))
    events: list[str] = []
    learned = await learn_and_validate(
        learner, seeds, out, heldout=held, resamples=50, run_record={"kind": "run", "note": "from python"},
        on_start=lambda already: events.append(f"start {already}"),
        on_outcome=lambda outcome: events.append("outcome"),
        on_learned=lambda result: events.append("learned"), on_note=events.append,
    )
    assert learned.validation_error is None and learned.rubric is not None
    assert events[0] == "start 0" and events.count("outcome") == 7
    assert events.index("learned") < next(i for i, e in enumerate(events) if e.startswith("validating on 3"))
    saved = Rubric.load(out)
    assert saved.provenance.holdout["pairs"] == 3 and set(saved.provenance.holdout["judges"]) == {
        "direct", "zero-shot", "learned"}
    assert learned.validation.judges == saved.provenance.holdout["judges"]
    state = [json.loads(line) for line in (tmp_path / "rubric.json.state.jsonl").read_text().splitlines()]
    assert state[0] == {"kind": "run", "note": "from python"} and state[1]["kind"] == "header"
    # the record arrpo eval can rerun is still written
    folder = holdout_dir(out)
    assert folder == tmp_path / "rubric.holdout"
    rows = [json.loads(line) for line in (folder / "heldout.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in held)
    assert "judges:" in (folder / "judges.yaml").read_text()
    assert learned.validation.judges["learned"]["judged"] == 3
    await learner.backend.aclose()


async def test_validate_rubric_from_python_resumes_and_sets_aside_a_changed_rubric(
    seed_dir, seeing, backend_for, tmp_path, no_reading_back
):
    _, server = seeing()
    seeds = read_seeds(seed_dir(KINDS[:4]), task="t2i")
    backend = backend_for(server)
    bright = Rubric.from_criteria(["The image is bright."], task="t2i")
    notes: list[str] = []
    first = await validate_rubric(bright, seeds.pairs, backend, tmp_path / "v", against=["direct"], resamples=0,
                                  on_note=notes.append)
    assert first.pairs == 4 and first.judges["learned"]["judged"] == 4 and notes == []
    asked = server.requests
    again = await validate_rubric(bright, seeds.pairs, backend, tmp_path / "v", against=["direct"], resamples=0)
    assert server.requests == asked and again.judges == first.judges  # resumed: nothing asked again
    red = Rubric.from_criteria(["The image is a saturated red."], task="t2i")
    changed = await validate_rubric(red, seeds.pairs, backend, tmp_path / "v", against=["direct"], resamples=0,
                                    on_note=notes.append)
    assert server.requests == asked + 4 * 2  # only the changed judge, both orders
    assert len(notes) == 1 and "judge 'learned' changed since the last run (its rubric text)" in notes[0]
    assert len(list((tmp_path / "v" / "verdicts").glob("learned.stale-*.jsonl"))) == 1
    assert changed.judges["direct"] == first.judges["direct"]
