"""Every adapter on a small fixture written in its benchmark's upstream file layout."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from arrpo.datasets import DatasetError, load_pairs
from arrpo.datasets.pairs import randomise_ab
from tests.eval.helpers import png_bytes, write_png


def test_mmrb2_t2i_and_edit(tmp_path):
    write_png(tmp_path / "images" / "p1_0.jpg", (200, 0, 0))
    write_png(tmp_path / "images" / "p1_1.jpg", (0, 200, 0))
    write_png(tmp_path / "input_images" / "src.jpg", (0, 0, 200))
    def response(name, path):
        return {"model_name": name, "response_content": [["image", path]]}
    t2i = {"pairs": [{
        "id": "oneigbench_124_x", "response_a": response("imagen4", "images/p1_0.jpg"),
        "response_b": response("flux", "images/p1_1.jpg"), "chosen": "B", "human_annotations": [2, 2, 1],
        "prompt_source": "oneigbench", "prompt_metadata": {"id": "124", "category": "Text_Rendering"},
        "prompt_content": [["text", "A wooden signpost in a misty forest."]],
    }]}
    edit = {"pairs": [{
        "id": "emu-edit_2121_x", "response_a": response("gemini", "images/p1_0.jpg"),
        "response_b": response("flux-kontext", "images/p1_1.jpg"), "chosen": "A", "human_annotations": [6, 6, 4],
        "prompt_source": "emu-edit", "prompt_metadata": {"id": 2121, "task": "global"},
        "prompt_content": [["image", "input_images/src.jpg"], ["text", "Fill the room with thick smoke."]],
    }]}
    (tmp_path / "t2i.json").write_text(json.dumps(t2i))
    (tmp_path / "edit.json").write_text(json.dumps(edit))
    [p] = load_pairs(f"mmrb2:{tmp_path / 't2i.json'}")
    assert (p.id, p.task, p.label, p.subset) == ("oneigbench_124_x", "t2i", "B", "oneigbench")
    assert p.prompt.startswith("A wooden") and p.meta["model_b"] == "flux"
    assert p.image_a.load().width == 24
    [e] = load_pairs(f"mmrb2:{tmp_path / 'edit.json'}", images=tmp_path)
    assert (e.task, e.label, e.subset, e.meta["input_images"]) == ("edit", "A", "emu-edit", 1)
    assert e.source.path == str(tmp_path / "input_images" / "src.jpg")
    [s] = load_pairs(f"mmrb2:{tmp_path / 'edit.json'}", options={"subset_field": "id"})
    assert s.subset == "emu-edit_2121_x"


def test_hpdv3_preferred_path1_is_randomised(tmp_path):
    records = []
    for i in range(20):
        write_png(tmp_path / "images" / f"w{i}.jpg", (i * 10, 0, 0))
        write_png(tmp_path / "images" / f"l{i}.jpg", (0, i * 10, 0))
        records.append({"prompt": f"prompt {i}", "choice_dist": [12, 7], "confidence": 0.99,
                        "path1": f"images/w{i}.jpg", "path2": f"images/l{i}.jpg", "model1": "flux", "model2": "infinity"})
    (tmp_path / "test.json").write_text(json.dumps(records))
    pairs = load_pairs(f"hpdv3:{tmp_path / 'test.json'}")
    assert len(pairs) == 20 and 0 < sum(p.label == "A" for p in pairs) < 20
    for p in pairs:
        winner = p.image_a if p.label == "A" else p.image_b
        assert Path(winner.path).name.startswith("w")
    assert [p.label for p in load_pairs(f"hpdv3:{tmp_path / 'test.json'}")] == [p.label for p in pairs]
    fixed = load_pairs(f"hpdv3:{tmp_path / 'test.json'}", options={"randomise_ab": False, "subset_field": "model1"})
    assert {p.label for p in fixed} == {"A"} and {p.subset for p in fixed} == {"flux"}


def test_editreward_bench_rows_k2_ties_and_embedded_images(tmp_path):
    for name, color in (("src", (1, 1, 1)), ("c1", (2, 2, 2)), ("c2", (3, 3, 3))):
        write_png(tmp_path / f"{name}.png", color)
    rows = [
        {"id": "r1", "instruction": "make it night", "source_image": "src.png", "candidate_1": "c1.png",
         "candidate_2": "c2.png", "ranking": "B>A", "dataset": "2pair", "model_1": "m1", "model_2": "m2",
         "score_1": 3.0, "score_2": 5.0, "comparison_type": "A_vs_B"},
        {"id": "r2", "instruction": "add a cat", "source_image": {"bytes": base64.b64encode(png_bytes((9, 9, 9))).decode(), "path": "s.png"},
         "candidate_1": {"bytes": base64.b64encode(png_bytes((8, 8, 8))).decode(), "path": None},
         "candidate_2": "c2.png", "ranking": "A=B", "dataset": "2pair"},
        {"id": "r3", "instruction": "x", "source_image": "src.png", "candidate_1": "c1.png", "candidate_2": "c2.png",
         "ranking": "A>C", "dataset": "3pair"},
    ]
    path = tmp_path / "editreward.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pairs = load_pairs(f"editreward:{path}")
    assert [(p.id, p.task, p.label) for p in pairs] == [("r1", "edit", "B"), ("r2", "edit", "tie")]
    assert pairs[1].image_a.data and pairs[1].source.load().width == 16
    assert [p.id for p in load_pairs(f"editreward:{path}", options={"drop_ties": True})] == ["r1"]


def test_editreward_bench_groups_of_three_and_four_map_letters_to_candidates(tmp_path):
    # upstream (TIGER-AI-Lab/EditReward, evaluate/inference_{3,4}pair_hf.py): a row of a K>2 group
    # compares candidate_1 (the first letter of comparison_type, "Left") with candidate_2 (the
    # second letter, "Right"); "C>A" on an "AvsC" row means candidate_2 is preferred
    for name, color in (("src", (1, 1, 1)), ("c1", (2, 2, 2)), ("c2", (3, 3, 3))):
        write_png(tmp_path / f"{name}.png", color)
    common = {"instruction": "make it night", "source_image": "src.png", "candidate_1": "c1.png",
              "candidate_2": "c2.png"}
    rows = [
        {"id": "g1_AvsB", "ranking": "A>B", "comparison_type": "AvsB", "dataset": "3pair"},
        {"id": "g1_AvsC", "ranking": "C>A", "comparison_type": "AvsC", "dataset": "3pair"},
        {"id": "g1_BvsC", "ranking": "B>C", "comparison_type": "BvsC", "dataset": "3pair"},
        {"id": "g2_CvsD", "ranking": "D>C", "comparison_type": "CvsD", "dataset": "4pair"},
        {"id": "g2_BvsD", "ranking": "B>D", "comparison_type": "BvsD", "dataset": "4pair"},
        {"id": "k2", "ranking": "B>A", "comparison_type": "AvsB", "dataset": "2pair"},
    ]
    path = tmp_path / "editreward.jsonl"
    path.write_text("".join(json.dumps({**common, **r}) + "\n" for r in rows))
    assert [p.id for p in load_pairs(f"editreward:{path}")] == ["k2"]  # K=2 only by default
    pairs = load_pairs(f"editreward:{path}", options={"all_groups": True})
    assert [(p.id, p.label) for p in pairs] == [
        ("g1_AvsB", "A"), ("g1_AvsC", "B"), ("g1_BvsC", "A"), ("g2_CvsD", "B"), ("g2_BvsD", "A"), ("k2", "B")]
    assert all(p.image_a.path.endswith("c1.png") and p.image_b.path.endswith("c2.png") for p in pairs)
    assert [p.subset for p in pairs] == ["3pair"] * 3 + ["4pair"] * 2 + ["2pair"]
    assert (pairs[1].meta["group"], pairs[1].meta["comparison_type"]) == ("g1", "AvsC")
    (tmp_path / "bad.jsonl").write_text(json.dumps({**common, **rows[1], "ranking": "B>A"}) + "\n")
    with pytest.raises(DatasetError, match="does not compare"):
        load_pairs(f"editreward:{tmp_path / 'bad.jsonl'}", options={"all_groups": True})


def test_imagereward_rankings_expand_to_pairs(tmp_path):
    gens = [f"part-005937/images/0167/{i}.webp" for i in range(4)]
    for i, g in enumerate(gens):
        write_png(tmp_path / g, (i * 40, 0, 0))
    test = [{"id": "005937-0167", "prompt": "an ocean with birds", "generations": gens, "ranking": [1, 3, 2, 3]}]
    (tmp_path / "test.json").write_text(json.dumps(test))
    pairs = load_pairs(f"imagereward:{tmp_path / 'test.json'}")
    labels = {p.id: p.label for p in pairs}
    assert labels == {"005937-0167:0-1": "A", "005937-0167:0-2": "A", "005937-0167:0-3": "A",
                      "005937-0167:1-2": "B", "005937-0167:2-3": "A"}  # 1-3 is a tie, dropped as upstream
    with_ties = load_pairs(f"imagereward:{tmp_path / 'test.json'}", options={"drop_ties": False})
    assert len(with_ties) == 6 and dict((p.id, p.label) for p in with_ties)["005937-0167:1-3"] == "tie"


def test_mjbench_caption_files(tmp_path, shared_data):
    folder = tmp_path / "mj" / "human"
    write_png(folder / "h_0.jpg", (5, 5, 5))
    write_png(folder / "h_0_edited_face.jpg", (6, 6, 6))
    (folder / "captions_human.json").write_text(json.dumps([
        {"caption": "A man in a hat.", "label_0": 1, "image_1": "h_0_edited_face.jpg", "image_0": "h_0.jpg"}]))
    [p] = load_pairs(f"mjbench:{tmp_path / 'mj'}")
    assert (p.id, p.subset) == ("human/h_0", "human")
    preferred = p.image_a if p.label == "A" else p.image_b
    assert preferred.path.endswith("h_0.jpg")
    real = load_pairs(f"mjbench:{shared_data / 'mjbench-artifacts'}")
    assert len(real) == 200 and 60 < sum(p.label == "A" for p in real) < 140
    assert all(Path(p.image_a.path).is_file() and Path(p.image_b.path).is_file() for p in real)


def test_genai_bench_votes_and_ties(tmp_path):
    for name in ("l", "r", "s"):
        write_png(tmp_path / f"{name}.png", (len(name), 0, 0))
    generation = [
        {"prompt": "a cat", "left_image": "l.png", "right_image": "r.png", "vote_type": "leftvote", "left_model": "sd", "right_model": "dalle"},
        {"prompt": "a dog", "left_image": "l.png", "right_image": "r.png", "vote_type": "rightvote"},
        {"prompt": "a cow", "left_image": "l.png", "right_image": "r.png", "vote_type": "tievote"},
        {"prompt": "a pig", "left_image": "l.png", "right_image": "r.png", "vote_type": "bothbad_vote"},
    ]
    edition = [{"source_prompt": "a room", "target_prompt": "a smoky room", "instruct_prompt": "add smoke",
                "source_image": "s.png", "left_output_image": "l.png", "right_output_image": "r.png", "vote_type": "rightvote"}]
    (tmp_path / "gen.jsonl").write_text("\n".join(map(json.dumps, generation)))
    (tmp_path / "edit.json").write_text(json.dumps(edition))
    pairs = load_pairs(f"genai-bench:{tmp_path / 'gen.jsonl'}")
    assert [p.label for p in pairs] == ["A", "B", "tie", "tie"] and pairs[0].meta["left_model"] == "sd"
    assert [p.label for p in load_pairs(f"genai-bench:{tmp_path / 'gen.jsonl'}", options={"drop_ties": True})] == ["A", "B"]
    [e] = load_pairs(f"genai-bench:{tmp_path / 'edit.json'}")
    assert (e.task, e.prompt, e.label, e.subset) == ("edit", "add smoke", "B", "image_edition")


def test_generic_jsonl_and_csv(tmp_path):
    write_png(tmp_path / "a.png", (1, 2, 3))
    write_png(tmp_path / "b.png", (3, 2, 1))
    (tmp_path / "p.jsonl").write_text(
        '{"id": "x", "prompt": "p", "image_a": "a.png", "image_b": "b.png", "label": "B", "subset": "s1"}\n'
        '{"id": "y", "instruction": "edit", "source": "a.png", "image_a": "a.png", "image_b": "b.png", "label": "tie"}\n')
    (tmp_path / "p.csv").write_text("id,prompt,image_a,image_b,label\nz,q,a.png,b.png,A\n")
    pairs = load_pairs(f"jsonl:{tmp_path / 'p.jsonl'}")
    assert [(p.id, p.task, p.label, p.subset) for p in pairs] == [("x", "t2i", "B", "s1"), ("y", "edit", "tie", "all")]
    [c] = load_pairs(f"csv:{tmp_path / 'p.csv'}")
    assert (c.id, c.label) == ("z", "A")


def test_hf_directories_parquet_and_arrow_with_embedded_images(tmp_path):
    """GenAI-Bench edition rows as the Hub stores them: image cells {"bytes", "path"}, in a parquet
    shard (downloaded repo layout) and in an Arrow stream (``save_to_disk`` layout)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [
        {"instruct_prompt": "make it blue", "vote_type": vote, "left_model": "m1", "right_model": "m2",
         "source_image": {"bytes": png_bytes((0, 0, 200)), "path": "src.png"},
         "left_output_image": {"bytes": png_bytes((200, 0, 0)), "path": f"l{i}.png"},
         "right_output_image": {"bytes": png_bytes((0, 200, 0)), "path": f"r{i}.png"}}
        for i, vote in enumerate(["leftvote", "rightvote", "tievote"])
    ]
    table = pa.Table.from_pylist(rows)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "hub" / "data" / "test-00000-of-00001.parquet")
    (tmp_path / "disk").mkdir()
    with pa.OSFile(str(tmp_path / "disk" / "data-00000-of-00001.arrow"), "wb") as sink, \
            pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    for folder in ("hub", "disk"):
        pairs = load_pairs(f"genai-bench:{tmp_path / folder}")
        assert [p.label for p in pairs] == ["A", "B", "tie"] and all(p.task == "edit" for p in pairs)
        first = pairs[0]
        assert first.prompt == "make it blue" and first.meta["left_model"] == "m1"
        assert first.image_a.load().to_pil().getpixel((0, 0)) == (200, 0, 0)
        assert first.source.load().to_pil().getpixel((0, 0)) == (0, 0, 200)
    assert len(load_pairs(f"genai-bench:{tmp_path / 'hub'}", options={"drop_ties": True})) == 2


def test_hf_directory_without_datasets_or_pyarrow_says_what_to_do(tmp_path, monkeypatch):
    import sys

    for name in ("datasets", "pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    (tmp_path / "hfdir" / "data").mkdir(parents=True)
    (tmp_path / "hfdir" / "data" / "test-00000-of-00001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="pip install pyarrow"):
        load_pairs(f"genai-bench:{tmp_path / 'hfdir'}")


@pytest.mark.parametrize(("spec", "message"), [
    ("nokind", "KIND:PATH"),
    ("foo:x.json", "unknown dataset kind"),
    ("hpdv3:/nonexistent/test.json", "no such file"),
])
def test_bad_specs(spec, message):
    with pytest.raises(DatasetError, match=message):
        load_pairs(spec)


def test_malformed_records_name_the_record(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps([{"prompt": "p", "path1": "a.png"}]))
    with pytest.raises(DatasetError, match="record 1: missing 'path2'"):
        load_pairs(f"hpdv3:{tmp_path / 'bad.json'}")
    (tmp_path / "dup.jsonl").write_text('{"id": "x", "prompt": "p", "image_a": "a", "image_b": "b", "label": "A"}\n' * 2)
    with pytest.raises(DatasetError, match="duplicate pair id"):
        load_pairs(f"jsonl:{tmp_path / 'dup.jsonl'}")
    row = '{"id": "%s", "prompt": "p", "image_a": "a", "image_b": "b", "label": "A"}\n'
    (tmp_path / "dup2.jsonl").write_text(row % "x" + "\n" + row % "y" + row % "x")  # a blank line 2
    with pytest.raises(DatasetError, match=r"dup2\.jsonl: line 4: duplicate pair id 'x' \(first at line 1\)"):
        load_pairs(f"jsonl:{tmp_path / 'dup2.jsonl'}")
    (tmp_path / "dup.json").write_text(json.dumps([json.loads(row % "x"), json.loads(row % "x")]))
    with pytest.raises(DatasetError, match=r"dup\.json: record 2: duplicate pair id 'x' \(first at record 1\)"):
        load_pairs(f"jsonl:{tmp_path / 'dup.json'}")
    for bad_id, problem in (("\ud800", r"lone surrogate \(U\+D800\)"), ("a\x07b", r"control character U\+0007")):
        (tmp_path / "odd.jsonl").write_text(row % "fine" + json.dumps({**json.loads(row % "x"), "id": bad_id}) + "\n")
        with pytest.raises(DatasetError, match=rf"odd\.jsonl: line 2: pair id .*{problem}"):
            load_pairs(f"jsonl:{tmp_path / 'odd.jsonl'}")
    (tmp_path / "vote.jsonl").write_text('{"prompt": "p", "left_image": "a", "right_image": "b", "vote_type": "??"}\n')
    with pytest.raises(DatasetError, match="vote_type"):
        load_pairs(f"genai-bench:{tmp_path / 'vote.jsonl'}")


def test_randomise_ab_is_deterministic_and_keeps_the_label_with_its_image(tmp_path):
    write_png(tmp_path / "a.png", (1, 1, 1))
    write_png(tmp_path / "b.png", (2, 2, 2))
    (tmp_path / "p.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "prompt": "p", "image_a": "a.png", "image_b": "b.png", "label": "A"}) + "\n" for i in range(30)))
    pairs = load_pairs(f"jsonl:{tmp_path / 'p.jsonl'}")
    once = [randomise_ab(p, seed=3) for p in pairs]
    assert once == [randomise_ab(p, seed=3) for p in pairs]
    assert 0 < sum(p.label == "B" for p in once) < 30
    assert all((p.image_a if p.label == "A" else p.image_b).path.endswith("a.png") for p in once)
