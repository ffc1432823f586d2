"""Benchmarks as their authors distribute them (issue 12): every layout on a fixture in exactly the
upstream format, images embedded the way the Hub stores them, labels checked by colour."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from arrpo.datasets import DatasetError, load_dataset, load_pairs
from arrpo.datasets.pairs import PreferencePair
from tests.eval.helpers import png_bytes, write_png

pytest.importorskip("pyarrow")

from tests.eval.hub import write_arrow_stream, write_parquet

GOOD, BAD = (200, 0, 0), (0, 0, 200)


def preferred(pair: PreferencePair):
    return pair.image_a if pair.label == "A" else pair.image_b


def colour(ref) -> tuple[int, int, int]:
    return ref.load().to_pil().convert("RGB").getpixel((0, 0))


def cell(color: tuple[int, int, int], name: str) -> dict:
    """An ``Image`` cell as the Hub stores it in parquet: the encoded bytes and the original file name."""
    return {"bytes": png_bytes(color), "path": name}


# ------------------------------------------------------------------------------ ImageRewardDB
@pytest.fixture
def imagereward_repo(tmp_path, shared_data):
    """The Hub release of ImageRewardDB: metadata-<split>.parquet at the root, images extracted to
    images/<split>/<split>_<n>/ beside the folder's JSON. The test prompt is the real README example
    (4 WebP generations, human ranks 1-4); rows are stored out of rank order."""
    example = shared_data / "imagereward-example"
    labels = json.loads((example / "labels.json").read_text())
    root = tmp_path / "ImageRewardDB"
    folder = root / "images" / "test" / "test_1"
    folder.mkdir(parents=True)
    rows, rank_of = [], {}
    for generation, local, rank in zip(labels["imagerewarddb_generations"], labels["local_images"], labels["human_ranking"], strict=True):
        name = Path(generation).name
        shutil.copyfile(example / local, folder / name)
        rank_of[name] = rank
        rows.append({"image_path": f"images/test/test_1/{name}", "prompt_id": labels["source"].split()[-1],
                     "prompt": labels["prompt"], "classification": "Outdoor Scenes", "image_amount_in_total": 4,
                     "rank": rank, "overall_rating": 7 - rank, "image_text_alignment_rating": 5,
                     "fidelity_rating": 5})
    rows = [rows[i] for i in (2, 0, 3, 1)]
    for i, rank in enumerate((1, 2, 2)):  # a second prompt with a tie (ranks 2 and 2)
        write_png(folder / f"second-{i}.webp", (rank * 60, 0, 0))
        rank_of[f"second-{i}.webp"] = rank
        rows.append({"image_path": f"images/test/test_1/second-{i}.webp", "prompt_id": "000001-0001",
                     "prompt": "a second prompt", "classification": "People", "image_amount_in_total": 3,
                     "rank": rank, "overall_rating": 5, "image_text_alignment_rating": 5, "fidelity_rating": 5})
    write_parquet(root / "metadata-test.parquet", rows)
    (folder / "test_1.json").write_text(json.dumps(rows, indent=2))
    train = root / "images" / "train" / "train_1"
    write_png(train / "t0.webp", GOOD)
    write_png(train / "t1.webp", BAD)
    train_rows = [{"image_path": f"images/train/train_1/t{i}.webp", "prompt_id": "9", "prompt": "train",
                   "classification": "x", "image_amount_in_total": 2, "rank": i + 1, "overall_rating": 1,
                   "image_text_alignment_rating": 1, "fidelity_rating": 1} for i in range(2)]
    write_parquet(root / "metadata-train.parquet", train_rows)
    write_parquet(root / "metadata-validation.parquet", train_rows)
    (train / "train_1.json").write_text(json.dumps(train_rows))
    return root, rank_of


def _check_imagereward(pairs, rank_of):
    assert len(pairs) == 6 + 2  # 6 pairs of the README prompt; the second prompt's tie is dropped
    for pair in pairs:
        a, b = Path(pair.image_a.path).name, Path(pair.image_b.path).name
        assert Path(preferred(pair).path).name == (a if rank_of[a] < rank_of[b] else b)
        assert Path(pair.image_a.path).is_file()
    return {(p.id, p.label) for p in pairs}


def test_imagereward_hub_metadata_parquet_folder_json_and_folders(imagereward_repo):
    root, rank_of = imagereward_repo
    expected = _check_imagereward(load_pairs(f"imagereward:{root / 'metadata-test.parquet'}"), rank_of)
    with pytest.raises(DatasetError, match=r"3 splits \(test, train, validation\).*split=NAME"):
        load_pairs(f"imagereward:{root}")
    by_root = load_pairs(f"imagereward:{root}", options={"split": "test"})
    per_folder = load_pairs(f"imagereward:{root / 'images/test/test_1/test_1.json'}")
    test_folder = load_pairs(f"imagereward:{root / 'images/test'}")
    with pytest.raises(DatasetError, match="split"):
        load_pairs(f"imagereward:{root / 'images'}")
    images_folder = load_pairs(f"imagereward:{root / 'images'}", options={"split": "test"})
    for pairs in (by_root, per_folder, test_folder, images_folder):
        assert _check_imagereward(pairs, rank_of) == expected
    real = [p for p in by_root if not p.id.startswith("000001")]
    assert real[0].image_a.load().width > 0  # the real WebP decodes
    with_ties = load_pairs(f"imagereward:{root}", options={"split": "test", "drop_ties": False})
    assert sum(p.label == "tie" for p in with_ties) == 1


# ------------------------------------------------------------------------------ MJ-Bench (Hub)
def _mjbench_hub_rows(n: int, category: str = "alignment", subcategory: str = "object") -> list[dict]:
    return [{"caption": f"caption {category} {i}", "image0": cell(GOOD, f"{i}_0.jpg"), "image1": cell(BAD, f"{i}_1.jpg"),
             "label": 0, "category": category, "subcategory": subcategory, "model": "flux"} for i in range(n)]


def test_mjbench_hub_parquet_image0_is_preferred_and_a_b_is_randomised(tmp_path):
    folder = tmp_path / "MJ-Bench"
    write_parquet(folder / "data" / "train-00000-of-00001.parquet", _mjbench_hub_rows(30), ("image0", "image1"))
    for spec in (f"mjbench:{folder}", f"mjbench:{folder / 'data' / 'train-00000-of-00001.parquet'}"):
        pairs = load_pairs(spec)
        assert len(pairs) == 30 and 5 < sum(p.label == "A" for p in pairs) < 25
        assert all(colour(preferred(p)) == GOOD for p in pairs)
        assert {p.subset for p in pairs} == {"alignment/object"} and pairs[0].meta["model"] == "flux"
    fixed = load_pairs(f"mjbench:{folder}", options={"randomise_ab": False})
    assert {p.label for p in fixed} == {"A"} and all(colour(p.image_a) == GOOD for p in fixed)


def test_mjbench_hub_label_1_prefers_image1(tmp_path):
    rows = _mjbench_hub_rows(4)
    for row in rows:
        row.update(image0=row["image1"], image1=row["image0"], label=1)
    path = write_parquet(tmp_path / "t.parquet", rows, ("image0", "image1"))
    assert all(colour(preferred(p)) == GOOD for p in load_pairs(f"mjbench:{path}"))


def test_mjbench_renamed_label_column_is_refused_not_flipped(tmp_path):
    rows = _mjbench_hub_rows(4)
    renamed = [{("label_0" if k == "label" else k): v for k, v in r.items()} for r in rows]
    path = write_parquet(tmp_path / "renamed.parquet", renamed, ("image0", "image1"))
    with pytest.raises(DatasetError, match="conventions are opposite"):
        load_pairs(f"mjbench:{path}")
    # and all the way to GitHub names with the Hub's values: every label_0 is 0
    for i in range(4):
        write_png(tmp_path / "gh" / f"{i}_0.jpg", GOOD)
        write_png(tmp_path / "gh" / f"{i}_1.jpg", BAD)
    (tmp_path / "gh" / "captions_x.json").write_text(json.dumps(
        [{"caption": f"c{i}", "image_0": f"{i}_0.jpg", "image_1": f"{i}_1.jpg", "label_0": 0} for i in range(4)]))
    with pytest.raises(DatasetError, match="every label_0 is 0"):
        load_pairs(f"mjbench:{tmp_path / 'gh'}")


def test_mjbench_hub_folder_with_several_splits_asks_for_one(tmp_path):
    folder = tmp_path / "hub"
    write_parquet(folder / "data" / "alignment-00000-of-00001.parquet", _mjbench_hub_rows(3), ("image0", "image1"))
    write_parquet(folder / "data" / "quality-00000-of-00001.parquet", _mjbench_hub_rows(2, "quality", "blur"),
                  ("image0", "image1"))
    with pytest.raises(DatasetError, match=r"2 splits \(alignment, quality\)"):
        load_pairs(f"mjbench:{folder}")
    assert len(load_pairs(f"mjbench:{folder}", options={"split": "quality"})) == 2
    both = load_pairs(f"mjbench:{folder}", options={"split": "*"})
    assert len(both) == 5 and len({p.id for p in both}) == 5


# ---------------------------------------------------------------------------- MJ-Bench (GitHub)
@pytest.fixture
def mjbench_github(tmp_path, shared_data):
    """The repository's artifacts/ folder: captions_<subset>.json with the images in
    examples_<subset>/ (the real 'human' subset, linked in), blur_dataset with its own keys and the
    images under sharp/, and coco_humans_prompts.json, which is not a caption file."""
    artifacts = tmp_path / "MJ-Bench" / "artifacts"
    real = shared_data / "mjbench-artifacts" / "human"
    examples = artifacts / "human" / "examples_human"
    examples.mkdir(parents=True)
    for image in real.glob("*.jpg"):
        (examples / image.name).symlink_to(image)
    shutil.copyfile(real / "captions_human.json", artifacts / "human" / "captions_human.json")
    blur = artifacts / "blur_dataset"
    items = []
    for i in range(3):
        write_png(blur / "sharp" / f"{i}.jpg", GOOD)
        write_png(blur / "sharp" / f"{i}_motion.jpg", BAD)
        write_png(blur / "sharp" / f"{i}_defocus.jpg", BAD)
        items.append({"caption": f"a photo {i}", "sharp_image": f"{i}.jpg", "motion_blur_image": f"{i}_motion.jpg",
                      "defocused_blur_image": f"{i}_defocus.jpg"})
    (blur / "blur_dataset.json").write_text(json.dumps(items, indent=4))
    (artifacts / "coco_humans_prompts.json").write_text(json.dumps(["a person on a bench", "two people"]))
    (artifacts / "human" / "metadata.json").write_text(json.dumps([{"id": 1, "source": "sdxl"}]))
    return artifacts


def test_mjbench_github_subset_folder_finds_images_in_examples(mjbench_github):
    pairs = load_pairs(f"mjbench:{mjbench_github / 'human'}")
    assert len(pairs) == 100 and 25 < sum(p.label == "A" for p in pairs) < 75
    assert all("examples_human" in p.image_a.path and "_edited" not in preferred(p).path for p in pairs)
    [one] = load_pairs(f"mjbench:{mjbench_github / 'human' / 'captions_human.json'}", limit=1)
    assert Path(one.image_a.path).is_file()


def test_mjbench_github_root_reads_every_subset_and_reports_other_files(mjbench_github):
    loaded = load_dataset(f"mjbench:{mjbench_github}")
    subsets = {p.subset for p in loaded.pairs}
    assert subsets == {"human", "blur_dataset/motion_blur", "blur_dataset/defocused_blur"}
    blur = [p for p in loaded.pairs if p.subset.startswith("blur")]
    assert len(blur) == 6 and all(colour(preferred(p)) == GOOD for p in blur)
    assert any("coco_humans_prompts.json" in note for note in loaded.notes)
    assert any("human/metadata.json" in note for note in loaded.notes)


def test_mjbench_github_images_elsewhere_stop_before_judging(mjbench_github, tmp_path):
    moved = tmp_path / "moved"
    shutil.move(str(mjbench_github / "human" / "examples_human"), moved)
    with pytest.raises(DatasetError, match=r"100 of 100 pairs have missing.*--images"):
        load_pairs(f"mjbench:{mjbench_github / 'human'}")
    assert len(load_pairs(f"mjbench:{mjbench_github / 'human'}", images=moved)) == 100


# ------------------------------------------------------------------------------- GenAI-Bench
def _genai_rows(n: int, edit: bool, tag: str) -> list[dict]:
    if edit:
        return [{"source_prompt": "a room", "target_prompt": "a blue room", "instruct_prompt": f"{tag} {i}",
                 "source_image": cell((0, 200, 0), f"s{i}.png"), "left_output_image": cell(GOOD, f"l{i}.png"),
                 "right_output_image": cell(BAD, f"r{i}.png"), "vote_type": "leftvote", "left_model": "m1",
                 "right_model": "m2", "judge": "anon"} for i in range(n)]
    return [{"prompt": f"{tag} {i}", "left_image": cell(BAD, f"l{i}.png"), "right_image": cell(GOOD, f"r{i}.png"),
             "vote_type": "rightvote", "left_model": "m1", "right_model": "m2", "judge": "anon"} for i in range(n)]


@pytest.fixture
def genai_repo(tmp_path):
    """TIGER-Lab/GenAI-Bench as downloaded: <config>/<split>-00000-of-00001.parquet for the splits
    test and test_v1; video_generation has no image columns."""
    root = tmp_path / "GenAI-Bench"
    edit = ("source_image", "left_output_image", "right_output_image")
    write_parquet(root / "image_edition" / "test-00000-of-00001.parquet", _genai_rows(3, True, "test"), edit)
    write_parquet(root / "image_edition" / "test_v1-00000-of-00001.parquet", _genai_rows(2, True, "v1"), edit)
    gen = ("left_image", "right_image")
    write_parquet(root / "image_generation" / "test-00000-of-00001.parquet", _genai_rows(4, False, "test"), gen)
    write_parquet(root / "image_generation" / "test_v1-00000-of-00001.parquet", _genai_rows(1, False, "v1"), gen)
    write_parquet(root / "video_generation" / "test-00000-of-00001.parquet",
                  [{"prompt": "p", "left_video": "a.mp4", "right_video": "b.mp4", "vote_type": "leftvote"}])
    return root


def test_genai_bench_configs_and_splits_are_exact_and_explicit(genai_repo):
    with pytest.raises(DatasetError, match=r"3 configs \(image_edition, image_generation, video_generation\)"):
        load_pairs(f"genai-bench:{genai_repo}")
    with pytest.raises(DatasetError, match=r"2 splits \(test, test_v1\)"):
        load_pairs(f"genai-bench:{genai_repo}", options={"config": "image_edition"})
    test = load_pairs(f"genai-bench:{genai_repo}", options={"config": "image_edition", "split": "test"})
    assert [p.prompt for p in test] == ["test 0", "test 1", "test 2"]  # test_v1 neither merged nor matched
    assert all(p.task == "edit" and colour(preferred(p)) == GOOD and colour(p.source) == (0, 200, 0) for p in test)
    v1 = load_pairs(f"genai-bench:{genai_repo / 'image_edition'}", options={"split": "test_v1"})
    assert [p.prompt for p in v1] == ["v1 0", "v1 1"]
    with pytest.raises(DatasetError, match=r"bad dataset option \(splt: unknown option\); options: seed"):
        load_pairs(f"genai-bench:{genai_repo}", options={"config": "image_edition", "splt": "test"})
    with pytest.raises(DatasetError, match="no split named 'tes'"):
        load_pairs(f"genai-bench:{genai_repo}", options={"config": "image_edition", "split": "tes"})
    gen = load_pairs(f"genai-bench:{genai_repo}", options={"config": "image_generation", "split": "test"})
    assert len(gen) == 4 and all(p.task == "t2i" and p.label == "B" and colour(preferred(p)) == GOOD for p in gen)
    both = load_pairs(f"genai-bench:{genai_repo / 'image_edition'}", options={"split": "test,test_v1"})
    assert len(both) == 5 and len({p.id for p in both}) == 5
    with pytest.raises(DatasetError, match="no image columns"):
        load_pairs(f"genai-bench:{genai_repo}", options={"config": "video_generation", "split": "test"})
    one_file = load_pairs(f"genai-bench:{genai_repo / 'image_edition' / 'test_v1-00000-of-00001.parquet'}")
    assert len(one_file) == 2


def test_genai_bench_parquet_conversion_layout(tmp_path):
    root = tmp_path / "converted"
    edit = ("source_image", "left_output_image", "right_output_image")
    write_parquet(root / "image_edition" / "test" / "0000.parquet", _genai_rows(3, True, "test"), edit)
    write_parquet(root / "image_edition" / "test_v1" / "0000.parquet", _genai_rows(2, True, "v1"), edit)
    with pytest.raises(DatasetError, match=r"test, test_v1"):
        load_pairs(f"genai-bench:{root}")
    assert len(load_pairs(f"genai-bench:{root}", options={"split": "test_v1"})) == 2


# ------------------------------------------------------------------ any Hub dataset dict, hf:file
def _generic_rows(n: int, tag: str) -> list[dict]:
    return [{"id": f"{tag}{i}", "prompt": f"{tag} {i}", "image_a": cell(GOOD, "a.png"), "image_b": cell(BAD, "b.png"),
             "label": "A"} for i in range(n)]


def test_hub_dataset_dict_never_merges_splits(tmp_path):
    images = ("image_a", "image_b")
    repo = tmp_path / "repo"
    write_parquet(repo / "data" / "train-00000-of-00002.parquet", _generic_rows(2, "train"), images)
    write_parquet(repo / "data" / "train-00001-of-00002.parquet", _generic_rows(2, "trainb"), images)
    write_parquet(repo / "data" / "test-00000-of-00001.parquet", _generic_rows(3, "test"), images)
    disk = tmp_path / "saved"
    (disk).mkdir()
    (disk / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    write_arrow_stream(disk / "train" / "data-00000-of-00001.arrow", _generic_rows(4, "train"), images)
    write_arrow_stream(disk / "test" / "data-00000-of-00001.arrow", _generic_rows(3, "test"), images)
    for folder in (repo, disk):
        with pytest.raises(DatasetError, match=r"2 splits \(test, train\)"):
            load_pairs(f"hf:{folder}")
        test = load_pairs(f"hf:{folder}", options={"split": "test"})
        assert [p.id for p in test] == ["test0", "test1", "test2"]
        assert len(load_pairs(f"hf:{folder}", options={"split": "train"})) == 4  # both shards of the split
    single = tmp_path / "one_saved_dataset"
    write_arrow_stream(single / "data-00000-of-00001.arrow", _generic_rows(2, "s"), images)
    (single / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    assert [p.id for p in load_pairs(f"hf:{single}")] == ["s0", "s1"]


def test_save_to_disk_written_by_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"id": ["x", "y"], "prompt": ["p", "q"], "image_a": [{"bytes": png_bytes(GOOD), "path": None}] * 2,
            "image_b": [{"bytes": png_bytes(BAD), "path": None}] * 2, "label": ["A", "A"]}
    features = datasets.Features({"id": datasets.Value("string"), "prompt": datasets.Value("string"),
                                  "image_a": datasets.Image(), "image_b": datasets.Image(),
                                  "label": datasets.Value("string")})
    one = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": one, "test": one}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DatasetError, match="2 splits"):
        load_pairs(f"hf:{tmp_path / 'dd'}")
    pairs = load_pairs(f"hf:{tmp_path / 'dd'}", options={"split": "test"})
    assert [colour(p.image_a) for p in pairs] == [GOOD, GOOD]


def test_hf_kind_reads_a_single_parquet_file(tmp_path):
    path = write_parquet(tmp_path / "pairs.parquet", _generic_rows(3, "p"), ("image_a", "image_b"))
    assert [p.id for p in load_pairs(f"hf:{path}")] == ["p0", "p1", "p2"]
    assert [p.id for p in load_pairs(f"jsonl:{path}")] == ["p0", "p1", "p2"]
    with pytest.raises(DatasetError, match="one file"):
        load_pairs(f"hf:{path}", options={"split": "train"})


# ------------------------------------------------------------------------ wrong kinds of files
def test_files_of_the_wrong_kind_are_clear_errors(tmp_path):
    parquet = write_parquet(tmp_path / "t2i.parquet", _generic_rows(1, "p"), ("image_a", "image_b"))
    with pytest.raises(DatasetError, match=r"is a parquet file, not MMRB2's t2i.json"):
        load_pairs(f"mmrb2:{parquet}")
    named_json = tmp_path / "test.json"
    named_json.write_bytes(parquet.read_bytes())
    with pytest.raises(DatasetError, match=r"is a parquet file, not HPDv3's test.json"):
        load_pairs(f"hpdv3:{named_json}")
    archive = tmp_path / "images.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(DatasetError, match=r"zip archive.*[Ee]xtract"):
        load_pairs(f"mjbench:{archive}")
    binary = tmp_path / "pairs.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DatasetError, match="binary data"):
        load_pairs(f"jsonl:{binary}")
    latin = tmp_path / "captions.json"
    latin.write_bytes('[{"caption": "caf\xe9"}]'.encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_pairs(f"mjbench:{latin}")
    image = write_png(tmp_path / "picture.json", GOOD)
    with pytest.raises(DatasetError, match="an image file"):
        load_pairs(f"imagereward:{image}")


# --------------------------------------------------------------- images checked before judging
def test_missing_and_undecodable_images_stop_the_load_or_are_skipped(tmp_path):
    write_png(tmp_path / "a.png", GOOD)
    rows = [{"id": f"p{i}", "prompt": "p", "image_a": "a.png", "image_b": f"gone{i}.png", "label": "A"} for i in range(5)]
    rows.append({"id": "ok", "prompt": "p", "image_a": "a.png", "image_b": "a.png", "label": "A"})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetError, match=r"5 of 6 pairs have missing.*gone0\.png.*and 2 more.*--images.*--skip-missing"):
        load_pairs(f"jsonl:{path}")
    loaded = load_dataset(f"jsonl:{path}", skip_missing=True)
    assert [p.id for p in loaded.pairs] == ["ok"] and len(loaded.skipped_missing) == 5
    embedded = write_parquet(tmp_path / "e.parquet", [
        {"id": "bad", "prompt": "p", "image_a": {"bytes": b"\x89PNG truncated", "path": "x.png"},
         "image_b": cell(BAD, "b.png"), "label": "A"}], ("image_a", "image_b"))
    with pytest.raises(DatasetError, match=r"x.png: embedded bytes do not decode"):
        load_pairs(f"hf:{embedded}")
