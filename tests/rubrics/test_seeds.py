"""Seed formats, each parsed from a fixture in its exact upstream schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arrpo.datasets.seeds import read_seed_dataset
from arrpo.rubrics import LearnConfig, RubricLearner, SeedFileError, read_seeds

from .conftest import write_png


def test_project_jsonl(tmp_path):
    for name, color in (("a.png", (1, 2, 3)), ("b.png", (4, 5, 6)), ("s.png", (7, 8, 9))):
        write_png(tmp_path / "img" / name, color)
    path = tmp_path / "seeds.jsonl"
    path.write_text(
        json.dumps({"id": "p1", "prompt": "a cat", "image_a": "img/a.png", "image_b": "img/b.png", "label": "B"})
        + "\n\n"
        + json.dumps({"instruction": "a dog", "image_a": "img/b.png", "image_b": "img/a.png", "label": "A"})
        + "\n"
    )
    seeds = read_seeds(path, task="t2i")
    assert seeds.format == "jsonl" and len(seeds.pairs) == 2
    first, second = seeds.pairs
    assert (first.id, first.prompt, first.preferred, Path(first.image_a.path).name) == ("p1", "a cat", "B", "a.png")
    assert second.id == "line-3" and second.prompt == "a dog"
    edit = tmp_path / "edit.jsonl"
    edit.write_text(json.dumps({"id": "e", "prompt": "make it red", "source": "img/s.png",
                                "image_a": "img/a.png", "image_b": "img/b.png", "label": "A"}) + "\n")
    assert read_seeds(edit).pairs[0].task == "edit"
    with pytest.raises(SeedFileError, match="'edit' pair but the task is 't2i'"):
        read_seeds(edit, task="t2i")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"id": "x", "prompt": "p", "image_a": "a.png", "image_b": "b.png"}, "has no 'label'"),
        ({"id": "x", "prompt": "p", "image_a": "a.png", "image_b": "b.png", "label": "C"}, "label"),
        ({"id": "x", "prompt": "p", "image_a": "missing.png", "image_b": "b.png", "label": "A"}, "not found"),
        ("not json", "seeds.jsonl:1"),
    ],
)
def test_project_jsonl_errors_name_the_problem(tmp_path, line, message):
    write_png(tmp_path / "a.png", (0, 0, 0))
    write_png(tmp_path / "b.png", (9, 9, 9))
    path = tmp_path / "seeds.jsonl"
    path.write_text((json.dumps(line) if isinstance(line, dict) else line) + "\n")
    with pytest.raises(SeedFileError, match=message):
        read_seeds(path, task="t2i")


def test_authors_t2i_and_edit_json(tmp_path):
    # exactly the shape of the authors' examples/seed_t2i_pairwise.json and seed_edit_pairwise.json
    for name in ("image_1_1.png", "image_1_2.png", "image_2_1.png", "image_3_1.png", "image_3_2.png"):
        write_png(tmp_path / "assets" / "images_test" / name, (len(name), 0, 0))
    t2i = tmp_path / "seed_t2i_pairwise.json"
    t2i.write_text(json.dumps([
        {"query": "A quiet courtyard in autumn.",
         "response": ["assets/images_test/image_1_1.png", "assets/images_test/image_1_2.png"],
         "label_rank": [2, 1]},
        {"prompt": "A tea house at dusk.",
         "response": ["assets/images_test/image_3_1.png", "assets/images_test/image_3_2.png"],
         "label_rank": [1, 2]},
        {"instruction": "Three candidates, ranked.",
         "images": ["assets/images_test/image_1_1.png", "assets/images_test/image_1_2.png",
                    "assets/images_test/image_2_1.png"],
         "label_rank": [2, 1, 2]},
    ], indent=2))
    seeds = read_seeds(t2i, task="t2i")
    assert seeds.format == "authors"
    assert [(p.id, p.preferred) for p in seeds.pairs] == [
        ("item-0", "B"), ("item-1", "A"), ("item-2:0-1", "B"), ("item-2:1-2", "A")]
    assert seeds.skipped == ["item-2: candidates 0 and 2 share rank 2"]

    edit = tmp_path / "seed_edit_pairwise.json"
    edit.write_text(json.dumps([
        {"query": "Add a red lantern to the scene while preserving the original composition.",
         "source_image": "assets/images_test/image_1_1.png",
         "edited_images": ["assets/images_test/image_1_2.png", "assets/images_test/image_2_1.png"],
         "label_rank": [1, 2]},
        {"instruction": "Old layout: base first in response.",
         "response": ["assets/images_test/image_3_1.png", "assets/images_test/image_3_2.png",
                      "assets/images_test/image_2_1.png"],
         "label_rank": [2, 1]},
    ]))
    pairs = read_seeds(edit, task="edit").pairs
    assert [p.task for p in pairs] == ["edit", "edit"]
    assert Path(pairs[0].source.path).name == "image_1_1.png" and pairs[0].preferred == "A"
    assert Path(pairs[1].source.path).name == "image_3_1.png" and Path(pairs[1].image_a.path).name == "image_3_2.png"
    assert pairs[1].preferred == "B"


def test_authors_json_without_source_for_edit_is_an_error(tmp_path):
    write_png(tmp_path / "a.png", (0, 0, 0))
    write_png(tmp_path / "b.png", (1, 1, 1))
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps([{"query": "q", "response": ["a.png", "b.png"], "label_rank": [1, 2]}]))
    with pytest.raises(SeedFileError, match="without 'source_image'"):
        read_seeds(path, task="edit")


def test_mjbench_fixture_schema_randomises_a_b(tmp_path):
    items = []
    for i in range(40):
        write_png(tmp_path / f"human_{i}.jpg", (200, 200, 200))
        write_png(tmp_path / f"human_{i}_edited_face.jpg", (20, 20, 20))
        items.append({"caption": f"A person number {i}.", "label_0": 1,
                      "image_1": f"human_{i}_edited_face.jpg", "image_0": f"human_{i}.jpg"})
    path = tmp_path / "captions_human.json"
    path.write_text(json.dumps(items, indent=4))
    seeds = read_seeds(path, task="t2i")
    assert seeds.format == "mjbench" and len(seeds.pairs) == 40
    preferred = [p.image_a if p.preferred == "A" else p.image_b for p in seeds.pairs]
    assert all("_edited" not in p.path for p in preferred)
    a_share = sum(p.preferred == "A" for p in seeds.pairs) / 40
    assert 0.25 <= a_share <= 0.75
    again = read_seeds(path, task="t2i")
    assert again.pairs == seeds.pairs
    other_seed = read_seeds(path, task="t2i", seed=1)
    assert [p.preferred for p in other_seed.pairs] != [p.preferred for p in seeds.pairs]


async def test_mjbench_real_data_end_to_end(shared_data, seeing, backend_for, tmp_path):
    path = shared_data / "mjbench-artifacts" / "human" / "captions_human.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    seeds = read_seeds(path, task="t2i")
    assert len(seeds.pairs) == 100
    assert 30 <= sum(p.preferred == "A" for p in seeds.pairs) <= 70
    for pair in seeds.pairs:
        preferred = pair.image_a if pair.preferred == "A" else pair.image_b
        assert "_edited" not in preferred.path and Path(pair.image_a.path).is_file() and Path(pair.image_b.path).is_file()
    seeds.pairs = seeds.pairs[:3]
    _, server = seeing()
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=1, max_pixels=64 * 64))
    result = await learner.learn(seeds, tmp_path / "state.jsonl")
    assert result.summary.decided == 3 and result.summary.bad_input == 0
    judged = [r for r in server.seen if '"rank"' in r.text]
    assert judged and all(len(r.images()) == 2 for r in judged)
    assert all(im.width * im.height <= 64 * 64 for r in judged for im in r.images())  # --max-pixels


async def test_corrupt_seed_image_is_bad_input_not_a_crash(seed_dir, seeing, backend_for, tmp_path):
    path = seed_dir(["first", "first"])
    (path.parent / "1_a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _, server = seeing()
    result = await RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=0)).learn(
        read_seeds(path, task="t2i"), tmp_path / "state.jsonl")
    statuses = {o.id: o.status for o in result.outcomes}
    assert statuses == {"first-0": "passed_first", "first-1": "bad_input"}
    assert "1_a.png" in result.outcomes[1].note
    assert result.rubric is not None and result.summary.bad_input == 1


# ------------------------------------------------------------ issue 11 item 2: the authors' format
def _authors_images(tmp_path):
    for name, color in (("src.png", (9, 9, 9)), ("e1.png", (200, 0, 0)), ("e2.png", (0, 0, 200))):
        write_png(tmp_path / name, color)


def test_authors_edit_item_under_t2i_is_refused_at_load(tmp_path):
    _authors_images(tmp_path)
    path = tmp_path / "seed_edit_pairwise.json"
    path.write_text(json.dumps([{"query": "make it red", "source_image": "src.png",
                                 "response": ["e1.png", "e2.png"], "label_rank": [1, 2]}]))
    with pytest.raises(SeedFileError, match=r"item 0 is an edit item \(it has 'source_image'\).*--task edit"):
        read_seeds(path, task="t2i")
    [pair] = read_seeds(path, task="edit").pairs
    assert pair.task == "edit" and Path(pair.source.path).name == "src.png" and pair.preferred == "A"
    assert read_seeds(path).pairs[0].task == "edit"  # no task given: inferred from the source image


@pytest.mark.parametrize("key", ["edited_image", "target_image", "output_image", "result_image"])
def test_authors_singular_edit_keys(tmp_path, key):
    _authors_images(tmp_path)
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps([{"instruction": "make it red", "ref_image": "src.png", key: ["e1.png", "e2.png"],
                                 "label_rank": [2, 1]}]))
    [pair] = read_seeds(path, task="edit").pairs
    assert Path(pair.source.path).name == "src.png" and pair.preferred == "B"
    assert Path(pair.image_b.path).name == "e2.png"
    with pytest.raises(SeedFileError, match=f"edit item \\(it has '(ref_image|{key})'\\)"):
        read_seeds(path, task="t2i")


@pytest.mark.parametrize("key", ["image", "generated_image"])
def test_authors_singular_t2i_keys(tmp_path, key):
    _authors_images(tmp_path)
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps([{"query": "a red square", key: ["e1.png", "e2.png"], "label_rank": [1, 2]}]))
    [pair] = read_seeds(path, task="t2i").pairs
    assert (pair.task, pair.preferred, Path(pair.image_a.path).name) == ("t2i", "A", "e1.png")


def test_seed_format_of_a_jsonl_file_is_told_by_its_keys(tmp_path):
    _authors_images(tmp_path)
    authors = tmp_path / "authors.jsonl"
    authors.write_text(json.dumps({"query": "a red square", "response": ["e1.png", "e2.png"], "label_rank": [2, 1]})
                       + "\n")
    seeds = read_seeds(authors, task="t2i")
    assert seeds.format == "authors" and seeds.pairs[0].preferred == "B"
    mj = tmp_path / "mj.jsonl"
    mj.write_text(json.dumps({"caption": "c", "image_0": "e1.png", "image_1": "e2.png", "label_0": 1}) + "\n")
    assert read_seeds(mj, task="t2i").format == "mjbench"
    project_list = tmp_path / "project.json"
    project_list.write_text(json.dumps([{"id": "x", "prompt": "p", "image_a": "e1.png", "image_b": "e2.png",
                                         "label": "B"}]))
    assert read_seeds(project_list, task="t2i").format == "jsonl"


def test_learning_and_evaluation_order_an_mjbench_pair_the_same_way(shared_data):
    from arrpo.datasets import load_pairs

    path = shared_data / "mjbench-artifacts" / "human" / "captions_human.json"
    for seed in (0, 7):
        learned = read_seeds(path, task="t2i", seed=seed).pairs
        evaluated = load_pairs(f"mjbench:{path}", options={"seed": seed})
        assert [(p.id, p.image_a, p.image_b, p.label) for p in learned] == \
            [(p.id, p.image_a, p.image_b, p.label) for p in evaluated]
        assert 30 <= sum(p.label == "A" for p in learned) <= 70


def test_seeds_from_a_dataset_spec_leave_ties_out(tmp_path):
    for name, color in (("a.png", (200, 0, 0)), ("b.png", (0, 0, 200))):
        write_png(tmp_path / name, color)
    rows = [{"prompt": f"p{i}", "left_image": "a.png", "right_image": "b.png", "vote_type": vote}
            for i, vote in enumerate(["leftvote", "rightvote", "tievote"])]
    path = tmp_path / "genai.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seeds = read_seed_dataset(f"genai-bench:{path}", task="t2i")
    assert [p.preferred for p in seeds.pairs] == ["A", "B"] and seeds.format == "dataset:genai-bench"
    assert seeds.skipped == ["image_generation-2: a tie (no preferred image)"]
    assert read_seed_dataset(f"genai-bench:{path}", task="t2i").sha256 == seeds.sha256
    with pytest.raises(SeedFileError, match="'t2i' pair but the task is 'edit'"):
        read_seed_dataset(f"genai-bench:{path}", task="edit")
    with pytest.raises(SeedFileError, match="no such file"):
        read_seed_dataset(f"genai-bench:{tmp_path / 'nothing'}", task="t2i")


def test_cli_refuses_an_edit_seed_file_under_the_default_task_before_any_call(seeing, tmp_path):
    from typer.testing import CliRunner

    from arrpo.cli import app

    _authors_images(tmp_path)
    path = tmp_path / "seed_edit_pairwise.json"
    path.write_text(json.dumps([{"query": "make it red", "source_image": "src.png",
                                 "response": ["e1.png", "e2.png"], "label_rank": [1, 2]}]))
    _, server = seeing()
    result = CliRunner().invoke(app, ["rubric", "learn", "--pairs", str(path), "--out", str(tmp_path / "r.json"),
                                      "--endpoint", server.base_url, "--model", "seeing", "--no-cache"])
    assert result.exit_code == 2 and "--task edit" in result.output
    assert server.seen == []


def test_cli_learns_from_a_dataset_spec(seeing, shared_data, tmp_path):
    from typer.testing import CliRunner

    from arrpo.cli import app
    from arrpo.rubric import Rubric

    _, server = seeing()
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [
        "rubric", "learn", "--dataset", f"mjbench:{shared_data / 'mjbench-artifacts' / 'human'}", "--limit", "2",
        "--k", "2", "--t-max", "1", "--max-pixels", "4096", "--out", str(out),
        "--endpoint", server.base_url, "--model", "seeing", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert Rubric.load(out).themes and server.seen
    report = (tmp_path / "report.html").read_text(encoding="utf-8")  # the report re-reads the dataset
    assert "could not read the seed file" not in report and "data:image/jpeg;base64," in report
    both = CliRunner().invoke(app, ["rubric", "learn", "--dataset", "mjbench:x", "--pairs", "y", "--out", "z"])
    assert both.exit_code == 2 and "exactly one of --pairs" in both.output
