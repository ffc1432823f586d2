"""PromptRubrics, the one prompt-rubric cache (writer, reward service, eval runs, training): one key
function that names the writer (a rubric written by another model is another rubric), a bounded
LRU, a folder across runs, one write shared by concurrent lookups, failures never kept."""

from __future__ import annotations

import asyncio

import pytest

from arrpo.rubric import Rubric, Theme
from arrpo.rubrics.write import PromptRubrics, RubricWriteError, RubricWriter, prompt_rubric_key


def rubric(text: str) -> Rubric:
    return Rubric(themes=[Theme(theme=text)], scope="prompt", prompt=text)


class Writes:
    """A writer that counts its calls (and can be slow or fail)."""

    def __init__(self, delay: float = 0.0, fail: BaseException | None = None, returns=None):
        self.calls: list[str] = []
        self.delay, self.fail, self.returns = delay, fail, returns

    def __call__(self, prompt: str):
        async def write():
            self.calls.append(prompt)
            await asyncio.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            return self.returns if self.returns is not None else rubric(f"for {prompt}")

        return write


async def test_concurrent_lookups_share_one_write_and_later_ones_are_hits():
    lookups: list[str] = []
    kept = PromptRubrics("m", on_lookup=lookups.append)
    writes = Writes(delay=0.05)
    results = await asyncio.gather(*(kept.get("t2i", "a fox", None, writes("a fox")) for _ in range(5)))
    assert writes.calls == ["a fox"] and kept.written == 1
    assert {r.render() for r, _ in results} == {rubric("for a fox").render()}
    assert [was_kept for _, was_kept in results] == [False] * 5
    assert lookups == ["miss"] + ["hit"] * 4
    again, was_kept = await kept.get("t2i", "a fox", None, writes("a fox"))
    assert again.render() == results[0][0].render()
    assert was_kept and writes.calls == ["a fox"] and lookups[-1] == "hit"


async def test_memory_is_bounded_least_recently_used_first():
    kept = PromptRubrics("m", max_size=2)
    writes = Writes()
    for prompt in ("a", "b", "a", "c"):  # "a" used again: "b" is the least recently used
        await kept.get("t2i", prompt, None, writes(prompt))
    assert writes.calls == ["a", "b", "c"]
    await kept.get("t2i", "a", None, writes("a"))
    await kept.get("t2i", "b", None, writes("b"))
    assert writes.calls == ["a", "b", "c", "b"]
    none_kept = PromptRubrics("m", max_size=0)
    for _ in range(2):
        await none_kept.get("t2i", "a", None, writes("a"))
    assert writes.calls[-2:] == ["a", "a"]


async def test_a_failed_write_is_named_and_not_kept():
    kept = PromptRubrics("m")
    for fail, message in ((RuntimeError("backend down"), "the rubric writer failed: RuntimeError: backend down"),
                          (RubricWriteError("no usable rubric"), "no usable rubric")):
        writes = Writes(fail=fail)
        for _ in range(2):
            with pytest.raises(RubricWriteError) as raised:
                await kept.get("t2i", "x", None, writes("x"))
            assert str(raised.value) == message
        assert len(writes.calls) == 2
    with pytest.raises(RubricWriteError, match="returned str, not a Rubric"):
        await kept.get("t2i", "x", None, Writes(returns="themes")("x"))
    assert kept.written == 0


async def test_the_folder_keeps_rubrics_across_instances_and_a_damaged_file_is_written_again(tmp_path, make_image):
    writes = Writes()
    source = make_image((10, 200, 10))
    first = PromptRubrics("m", cache_dir=tmp_path)
    await first.get("edit", "make it blue", source, writes("make it blue"))
    key = first.key("edit", "make it blue", source)
    assert (tmp_path / f"{key}.json").is_file()
    second = PromptRubrics("m", cache_dir=tmp_path)
    got, was_kept = await second.get("edit", "make it blue", source, writes("make it blue"))
    assert was_kept and got.render() == rubric("for make it blue").render() and len(writes.calls) == 1
    (tmp_path / f"{key}.json").write_text("{not json")
    third = PromptRubrics("m", cache_dir=tmp_path)
    await third.get("edit", "make it blue", source, writes("make it blue"))
    assert len(writes.calls) == 2 and Rubric.load(tmp_path / f"{key}.json").themes


def test_one_key_names_the_writer_the_task_the_prompt_and_the_source(make_image):
    red, red_again, blue = make_image((200, 0, 0)), make_image((200, 0, 0)), make_image((0, 0, 200))
    key = prompt_rubric_key("model-a", "edit", "make it night", red)
    assert key == prompt_rubric_key("model-a", "edit", "make it night", red_again)  # content, not object
    others = {prompt_rubric_key("model-b", "edit", "make it night", red),
              prompt_rubric_key("model-a", "edit", "make it night", blue),
              prompt_rubric_key("model-a", "edit", "make it day", red),
              prompt_rubric_key("model-a", "t2i", "make it night")}
    assert key not in others and len(others) == 4


def test_a_writers_keys_name_its_model_and_its_options(backend_for, seeing):
    _vlm, server = seeing()

    class Renamed:
        def __init__(self, inner, model_id):
            self.inner, self.model_id = inner, model_id

        async def complete(self, request):
            return await self.inner.complete(request)

        async def aclose(self):
            await self.inner.aclose()

    backend = backend_for(server)
    one = RubricWriter(backend)
    assert one.prompt_key("t2i", "x") == RubricWriter(backend).prompt_key("t2i", "x")
    assert one.prompt_key("t2i", "x") != RubricWriter(Renamed(backend, "openai:u#other")).prompt_key("t2i", "x")
    assert one.prompt_key("t2i", "x") != RubricWriter(backend, max_tips=2).prompt_key("t2i", "x")
    assert one.prompt_key("t2i", "x") == RubricWriter(backend, retries=5).prompt_key("t2i", "x")
