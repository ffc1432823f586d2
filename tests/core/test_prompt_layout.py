"""The judge's two prompt layouts (``prompt_layout: authors | cached``): what each request holds and
in which order, that both say the same words, the re-ask in each, the HTTP body, the verdict and the
judge's identity, and an unknown layout refused everywhere it can be set."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from arrpo.errors import describe_validation_error
from arrpo.judge import IMAGE_LABELS, JUDGE_TEMPLATES, SOURCE_LABEL, PairwiseJudge
from arrpo.rubric import Rubric, Theme
from arrpo.schema import Comparison
from arrpo.testing.scripted_server import DEFAULT_ANSWER, Reply
from arrpo.vlm import build_backend
from arrpo.vlm.base import ImagePart, TextPart
from arrpo.vlm.vllm_offline import vllm_conversation

RUBRIC = Rubric(themes=[Theme(theme="Spelling of the sign", tips=["every letter as asked"]),
                        Theme(theme="Realism", tips=["plausible light", "no warped hands"])])


def _t2i(make_image, prompt="a red bicycle", colors=((200, 0, 0), (0, 0, 200))) -> Comparison:
    return Comparison(prompt=prompt, image_a=make_image(colors[0]), image_b=make_image(colors[1]), rubric=RUBRIC)


def _edit(make_image) -> Comparison:
    return Comparison(task="edit", prompt="make the sky pink", image_a=make_image((250, 150, 200)),
                      image_b=make_image((10, 10, 10)), source=make_image((90, 90, 250)), rubric=RUBRIC)


def _shape(message) -> list[str]:
    """A message's parts as words: the text itself, or ``<image:sha8>``."""
    return [p.text if isinstance(p, TextPart) else f"<image:{p.image.sha256[:8]}>" for p in message.parts]


def _img(image) -> str:
    return f"<image:{image.sha256[:8]}>"


def test_authors_is_the_default_one_user_message_with_the_images_first(make_image):
    comparison = _edit(make_image)
    (message,) = PairwiseJudge(None).build_messages(comparison, "BA")  # type: ignore[arg-type]
    assert message.role == "user"
    label_1, label_2 = IMAGE_LABELS["edit"]
    parts = _shape(message)
    assert parts[:6] == [SOURCE_LABEL, _img(comparison.source), label_1, _img(comparison.image_b),
                         label_2, _img(comparison.image_a)]
    assert len(parts) == 7 and parts[6].startswith("You are shown an original image")
    assert "Editing instruction: make the sky pink" in parts[6] and "Theme: Realism" in parts[6]


@pytest.mark.parametrize("order", ["AB", "BA"])
def test_cached_sends_instructions_and_rubric_as_a_system_message_first(make_image, order):
    judge = PairwiseJudge(None, prompt_layout="cached")  # type: ignore[arg-type]
    for comparison in (_t2i(make_image), _edit(make_image)):
        system, user = judge.build_messages(comparison, order)
        assert (system.role, user.role) == ("system", "user")
        instructions = system.text
        assert instructions.startswith("You are shown")
        assert "Evaluation Rubrics:\nRubric 1:\nTheme: Spelling of the sign\n- Tip1: every letter as asked" in instructions
        assert "Requirements:" in instructions and instructions.endswith('The "rank" array must contain exactly 2 values.')
        assert comparison.prompt not in instructions  # the prompt is the request's, not the shared prefix
        first, second = (comparison.image_a, comparison.image_b) if order == "AB" else (comparison.image_b, comparison.image_a)
        label_1, label_2 = IMAGE_LABELS[comparison.task]
        line = ("Editing instruction: " if comparison.task == "edit" else "Caption: ") + comparison.prompt
        source = [SOURCE_LABEL, _img(comparison.source)] if comparison.task == "edit" else []
        assert _shape(user) == [line, *source, label_1, _img(first), label_2, _img(second)]
        assert not any(isinstance(p, TextPart) and "Rubric" in p.text for p in user.parts)


def test_both_layouts_say_the_same_words(make_image):
    for comparison in (_t2i(make_image), _edit(make_image)):
        for allow_ties in (False, True):
            (authors,) = PairwiseJudge(None, allow_ties=allow_ties).build_messages(comparison, "AB")  # type: ignore[arg-type]
            system, user = PairwiseJudge(None, allow_ties=allow_ties, prompt_layout="cached").build_messages(  # type: ignore[arg-type]
                comparison, "AB")
            assert authors.images == user.images  # the same images, in the same order
            authors_text = authors.parts[-1].text  # type: ignore[union-attr]
            cached_text = system.text + "\n" + user.parts[0].text  # type: ignore[union-attr]
            assert sorted(authors_text.splitlines()) == sorted([*cached_text.splitlines(), ""])
            # the authors' order: task and rubric, then the prompt line, then the requirements
            assert authors_text.index(user.parts[0].text) < authors_text.index("Requirements:")  # type: ignore[union-attr]


def test_the_cached_prefix_is_the_same_for_every_request_under_one_rubric(make_image):
    judge = PairwiseJudge(None, prompt_layout="cached")  # type: ignore[arg-type]
    systems = {
        judge.build_messages(c, order)[0].text
        for c in (_t2i(make_image), _t2i(make_image, "a lighthouse at dusk", ((1, 2, 3), (4, 5, 6))))
        for order in ("AB", "BA")
    }
    assert len(systems) == 1
    other = _t2i(make_image).model_copy(update={"rubric": Rubric.from_criteria(["Only composition"])})
    assert judge.build_messages(other, "AB")[0].text not in systems  # another rubric: another prefix


def _unusable_first(request) -> Reply:
    """An unusable first answer; after the re-ask (one assistant turn quoted back), a decision."""
    if any(m.get("role") == "assistant" for m in request.messages):
        return Reply(text='{"rank": [2, 1], "reason": "the second is sharper"}')
    return Reply(text="Both are nice pictures.")


@pytest.mark.parametrize("layout", ["authors", "cached"])
def test_the_reask_after_an_unusable_answer_works_in_each_layout(scripted_server, make_image, layout):
    server = scripted_server(_unusable_first)
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=False)
    verdict = PairwiseJudge(backend, order="given", prompt_layout=layout).judge_sync(_t2i(make_image))
    assert verdict.winner == "B" and verdict.answers[0].attempts == 2
    assert verdict.prompt_layout == layout
    first, again = (r.body["messages"] for r in server.seen)
    roles = ["system", "user"] if layout == "cached" else ["user"]
    assert [m["role"] for m in first] == roles
    assert [m["role"] for m in again] == [*roles, "assistant", "user"]
    assert again[:len(roles)] == first  # the re-ask repeats the first request, then quotes the answer
    assert again[-1]["content"][0]["text"].startswith("Your previous reply could not be used")


def test_the_http_body_of_the_cached_layout(scripted_server, make_image):
    server = scripted_server(lambda request: Reply(text=DEFAULT_ANSWER))
    backend = build_backend(server.base_url, "m", max_retries=0, cache_path=False)
    PairwiseJudge(backend, order="given", prompt_layout="cached").judge_sync(_edit(make_image))
    system, user = server.seen[0].body["messages"]
    assert system["role"] == "system" and isinstance(system["content"], str) and "Rubric 2:" in system["content"]
    assert [part["type"] for part in user["content"]] == ["text", "text", "image_url", "text", "image_url", "text",
                                                          "image_url"]
    assert user["content"][0]["text"] == "Editing instruction: make the sky pink"


def test_the_vllm_in_process_conversation_keeps_the_system_message_first(make_image):
    request = PairwiseJudge(None, prompt_layout="cached").build_request(_t2i(make_image), "AB")  # type: ignore[arg-type]
    conversation = vllm_conversation(request.messages)
    assert [m["role"] for m in conversation] == ["system", "user"]
    assert isinstance(conversation[0]["content"], str)
    assert [p["type"] for p in conversation[1]["content"]] == ["text", "text", "image_url", "text", "image_url"]
    assert all(isinstance(p, TextPart | ImagePart) for m in request.messages for p in m.parts)


def test_the_layout_is_part_of_the_judges_identity():
    authors, cached = PairwiseJudge(None), PairwiseJudge(None, prompt_layout="cached")  # type: ignore[arg-type]
    assert authors.identity()["prompt_layout"] == "authors" and cached.identity()["prompt_layout"] == "cached"
    assert authors.identity() != cached.identity()
    assert authors.identity()["prompts_sha256"] == cached.identity()["prompts_sha256"]
    assert "ocr_evidence" in JUDGE_TEMPLATES  # the evidence block's wording is hashed too


def test_an_unknown_layout_is_refused_in_python_eval_yaml_and_the_rpo_config(tmp_path):
    with pytest.raises(ValidationError) as caught:
        PairwiseJudge(None, prompt_layout="images_last")  # type: ignore[arg-type]
    assert describe_validation_error(caught.value) == "prompt_layout: Input should be 'authors' or 'cached'"

    from arrpo.eval.config import ConfigError, load_config

    path = tmp_path / "judges.yaml"
    path.write_text("judges:\n  - {name: a, kind: direct, prompt_layout: sideways}\n")
    with pytest.raises(ConfigError, match=r"judges\.0\.prompt_layout: Input should be 'authors' or 'cached'"):
        load_config(path)

    from arrpo.rl.config import build_config

    with pytest.raises(Exception, match="prompt_layout") as refused:
        build_config({"judge": {"prompt_layout": "sideways"}})
    assert "'authors' or 'cached'" in str(refused.value)


def test_arrpo_judge_pairs_records_the_layout_in_each_verdict(tmp_path, scripted_server):
    from typer.testing import CliRunner

    from arrpo.cli import app
    from tests.eval.helpers import write_png

    server = scripted_server(lambda request: Reply(text=DEFAULT_ANSWER))
    write_png(tmp_path / "a.png", (200, 10, 10))
    write_png(tmp_path / "b.png", (10, 10, 200))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "p1", "prompt": "a red bicycle", "image_a": "a.png", "image_b": "b.png"}) + "\n")
    out = tmp_path / "verdicts.jsonl"
    result = CliRunner().invoke(app, ["judge", "--pairs", str(pairs), "--out", str(out), "--order", "given",
                                      "--prompt-layout", "cached", "--endpoint", server.base_url, "--model", "m",
                                      "--no-cache"])
    assert result.exit_code == 0, result.output
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["prompt_layout"] == "cached"
    assert server.seen[0].body["messages"][0]["role"] == "system"
    bad = CliRunner().invoke(app, ["judge", "--pairs", str(pairs), "--out", str(out), "--prompt-layout", "sideways"])
    assert bad.exit_code == 2 and "sideways" in bad.output
