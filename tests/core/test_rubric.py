"""Rubric rendering is deterministic and survives a JSON round trip."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from arrpo.rubric import Provenance, Rubric, Theme


def sample() -> Rubric:
    return Rubric(
        themes=[
            Theme(theme="Prompt adherence", tips=["All objects present", "  Counts match  ", ""]),
            Theme(theme="Artifacts", tips=["No extra fingers"], weight=2),
        ],
        task="t2i",
        provenance=Provenance(method="learned", generator_model="m", k=5, t_max=5, pairs=3),
    )


def test_render_exact_text():
    assert sample().render() == (
        "Rubric 1:\nTheme: Prompt adherence\n- Tip1: All objects present\n- Tip2: Counts match\n\n"
        "Rubric 2:\nTheme: Artifacts (weight 2)\n- Tip1: No extra fingers"
    )


def test_json_round_trip(tmp_path):
    rubric = sample()
    path = rubric.save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["rendered"] == rubric.render()
    loaded = Rubric.load(path)
    assert loaded == rubric and loaded.render() == rubric.render()


def test_invalid_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"themes": []}')
    with pytest.raises(ValueError, match="not a valid arrpo rubric"):
        Rubric.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        Rubric.load(bad)


def test_blank_theme_refused():
    with pytest.raises(ValidationError):
        Theme(theme="   ")


def test_from_criteria():
    rubric = Rubric.from_criteria(["a", " ", "b"], scope="prompt", prompt="p")
    assert [t.theme for t in rubric.themes] == ["a", "b"] and rubric.scope == "prompt"


def test_learned_provenance_fields_are_typed_and_written_as_before(tmp_path):
    provenance = Provenance(method="learned", generator_model="m", k=3, bad_input="2", structure="fallback",
                            max_themes=10, learn_tokens=120, note="kept as written")
    rubric = Rubric(themes=[Theme(theme="Sharp edges")], provenance=provenance)
    path = rubric.save(tmp_path / "r.json")
    written = json.loads(path.read_text())["provenance"]
    assert list(written) == ["method", "generator_model", "k", "created", "arrpo_version", "bad_input",
                             "structure", "max_themes", "learn_tokens", "note"]  # unset fields are not written
    loaded = Rubric.load(path).provenance
    assert loaded.bad_input == 2 and loaded.structure == "fallback" and loaded.holdout is None
    assert loaded.model_extra == {"note": "kept as written"}
