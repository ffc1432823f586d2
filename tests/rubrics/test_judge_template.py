"""The judge prompt: no invented theme priority, and one set of image names per task."""

from __future__ import annotations

import re

import pytest

from arrpo.judge import IMAGE_LABELS, PairwiseJudge
from arrpo.prompts import render, template_sha256
from arrpo.rubric import Rubric
from arrpo.rubrics import LearnConfig, RubricLearner
from arrpo.schema import Comparison

from .conftest import write_png


@pytest.mark.parametrize("rubric", [None, "Rubric 1:\nTheme: Light"])
@pytest.mark.parametrize("allow_ties", [False, True])
def test_edit_prompt_names_the_edits_the_same_way_everywhere(rubric, allow_ties):
    text = render("judge", task="edit", rubric=rubric, prompt="make the sky pink", allow_ties=allow_ties)
    assert "Edited Image 1" in text and "Edited Image 2" in text
    assert not re.search(r"(?<!Edited )Image [12]\b", text), text
    retry = render("judge_retry", problem="no rank", allow_ties=allow_ties, task="edit")
    assert not re.search(r"(?<!Edited )Image [12]\b", retry)


def test_t2i_prompt_uses_plain_image_names():
    text = render("judge", task="t2i", rubric=None, prompt="a cat", allow_ties=False)
    assert "[1, 2] means Image 1 is better" in text and "Edited" not in text


def test_no_theme_priority_is_invented():
    for task in ("t2i", "edit"):
        text = render("judge", task=task, rubric="Rubric 1:\nTheme: Light", prompt="x", allow_ties=False)
        assert "earlier themes" not in text and "more importance" not in text


def test_labels_before_the_images_match_the_names_in_the_text(tmp_path):
    image = write_png(tmp_path / "a.png", (1, 2, 3))
    from arrpo.images import load_image

    loaded = load_image(image)
    comparison = Comparison(task="edit", prompt="p", image_a=loaded, image_b=loaded, source=loaded,
                            rubric=Rubric.from_criteria(["Light"]))
    message = PairwiseJudge(object()).build_messages(comparison, "AB")[0]  # type: ignore[arg-type]
    texts = [p.text for p in message.parts if hasattr(p, "text")]
    for label in IMAGE_LABELS["edit"]:
        assert label in texts and label.rstrip(":") in texts[-1]


def test_a_state_written_under_other_prompt_wording_is_not_resumed(tmp_path):
    from types import SimpleNamespace

    from arrpo.datasets.seeds import SeedSet
    from arrpo.rubrics.learn import LEARN_TEMPLATES
    from arrpo.rubrics.state import open_state, prepare_state, read_state

    learner = RubricLearner(SimpleNamespace(model_id="m"), LearnConfig(task="t2i"))  # type: ignore[arg-type]
    fingerprint = learner.fingerprint(SeedSet(pairs=[], sha256="s", format="jsonl"))
    assert fingerprint["prompts_sha256"] == template_sha256(*LEARN_TEMPLATES)
    assert fingerprint["verify_order"] == "both"
    state = tmp_path / "state.jsonl"
    open_state(state, {**fingerprint, "prompts_sha256": "older wording"}).close()
    moved = prepare_state(state, fingerprint)  # set aside, never resumed under the new wording
    assert moved is not None and moved.changes == ("prompts_sha256",) and not state.exists()
    assert read_state(state) == {}
