"""Hostile request bodies against the label and review pages: lone surrogates, control characters,
values of the wrong type, huge ids and numbers, deep nesting. Each gets a clear 4xx or a record that
the next command can read; nothing crashes and nothing unreadable is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from arrpo.annotate.items import LabelInputError, read_items
from arrpo.annotate.label_app import create_label_app
from arrpo.annotate.labels import LabelBook, log_path_for
from arrpo.annotate.review import ExemplarBook, RunView
from arrpo.annotate.review_app import create_review_app
from arrpo.rubrics.guide import read_guide

from .conftest import make_pairs
from .test_review import make_run


def raw_post(http: TestClient, path: str, body: bytes):
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.fixture
def review(tmp_path, scripted_server):
    run, _ = make_run(tmp_path, scripted_server)
    view = RunView.load(run)
    book = ExemplarBook(tmp_path / "ex.jsonl", view)
    yield TestClient(create_review_app(view, book), base_url="http://127.0.0.1:8766",
                     raise_server_exceptions=False), book, tmp_path / "ex.jsonl"
    book.close()


def test_a_rationale_with_a_lone_surrogate_is_stored_so_that_learning_can_read_it(review):
    http, book, out = review
    body = b'{"n": 0, "preferred": "A", "rationale": "the face \\ud800 is intact;\\u0000\\u001b[31m no smear"}'
    response = raw_post(http, "/api/exemplars", body)
    assert response.status_code == 200, response.text
    book.close()
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["rationale"] == "the face \ufffd is intact; [31m no smear"  # U+FFFD, no NUL or ESC
    guide = read_guide(out, "t2i")  # what `arrpo rubric learn --guide` does with the file
    assert len(guide.exemplars) == 1


@pytest.mark.parametrize("rationale", [{"x": "a long enough reason"}, ["a long enough reason"], 12345, None])
def test_a_rationale_that_is_not_text_is_refused(review, rationale):
    http, _, out = review
    response = http.post("/api/exemplars", json={"n": 1, "preferred": "A", "rationale": rationale})
    assert response.status_code == 409 and "rationale" in response.json()["error"]["message"]
    assert not out.exists() or out.read_text() == ""


def test_huge_numbers_and_deep_nesting_get_4xx(review):
    http, _, out = review
    assert raw_post(http, "/api/exemplars", b'{"n": ' + b"9" * 4000 + b', "preferred": "A", "rationale": "abc"}'
                    ).status_code == 409
    assert raw_post(http, "/api/exemplars", b"[" * 20000 + b"]" * 20000).status_code in (400, 413, 422)
    assert http.get("/api/image/" + "9" * 5000 + "/a").status_code in (404, 422)
    assert not out.exists() or out.read_text() == ""


def test_label_errors_quote_a_huge_or_hostile_id_briefly(tmp_path):
    pairs, _ = make_pairs(tmp_path / "data", n=2)
    book = LabelBook(read_items(pairs), tmp_path / "out" / "seeds.jsonl")
    try:
        http = TestClient(create_label_app(book), base_url="http://127.0.0.1:8765", raise_server_exceptions=False)
        huge = raw_post(http, "/api/answer", b'{"id": "' + b"x" * 60000 + b'", "choice": "left"}')
        assert huge.status_code == 409 and len(huge.json()["error"]["message"]) < 200
        surrogate = raw_post(http, "/api/answer", b'{"id": "\\ud800", "choice": "\\udfff"}')
        assert surrogate.status_code == 409
        surrogate.content.decode("utf-8")  # the answer itself is valid UTF-8
        assert not log_path_for(book.out).exists() or log_path_for(book.out).read_text() == ""
    finally:
        book.close()


def test_a_second_page_on_the_same_output_is_refused(tmp_path):
    """Two pages writing one log would each rebuild the seed file from their own answers only."""
    pairs, _ = make_pairs(tmp_path / "data", n=2)
    out = tmp_path / "out" / "seeds.jsonl"
    first = LabelBook(read_items(pairs), out)
    try:
        with pytest.raises(ValueError, match="already writing"):
            LabelBook(read_items(pairs), out)
        other = LabelBook(read_items(pairs), tmp_path / "out" / "other.jsonl")  # another --out is fine
        other.close()
    finally:
        first.close()
    LabelBook(read_items(pairs), out).close()  # closed (or killed): the next session may start


def test_the_cli_refuses_a_second_page_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from arrpo.cli import app as cli

    pairs, _ = make_pairs(tmp_path / "data", n=2)
    out = tmp_path / "seeds.jsonl"
    first = LabelBook(read_items(pairs), out)
    try:
        result = CliRunner().invoke(cli, ["label", str(pairs), "--out", str(out), "--port", "0"], env={"COLUMNS": "300"})
    finally:
        first.close()
    assert result.exit_code == 2 and "already writing" in result.output


def test_a_second_review_page_on_the_same_exemplars_is_refused(review, tmp_path):
    _, book, out = review
    with pytest.raises(ValueError, match="already writing"):
        ExemplarBook(out, book.view)
    book.close()
    ExemplarBook(out, book.view).close()


def test_a_run_with_lone_surrogates_and_huge_reasons_is_still_reviewed(tmp_path, scripted_server):
    """An older or edited run may hold text no JSON response can encode; the page still loads, shows
    a bounded reason, and an exemplar marked from it is readable by `rubric learn --guide`."""
    run, _ = make_run(tmp_path, scripted_server)
    verdicts = next((run / "verdicts").glob("*.jsonl"))
    lines = verdicts.read_text().splitlines()
    record = json.loads(lines[0])
    record["forward"]["reason"] = "odd \ud800 answer " + "y" * 300_000
    lines[0] = json.dumps(record)  # json.dumps escapes the surrogate as \ud800
    verdicts.write_text("\n".join(lines) + "\n")
    manifest = run / "pairs.jsonl"
    pairs = manifest.read_text().splitlines()
    pair = json.loads(pairs[0])
    pair["prompt"] = "a prompt \udfff with a surrogate"
    pairs[0] = json.dumps(pair)
    manifest.write_text("\n".join(pairs) + "\n")

    view = RunView.load(run)
    book = ExemplarBook(tmp_path / "ex.jsonl", view)
    try:
        http = TestClient(create_review_app(view, book), base_url="http://127.0.0.1:8766",
                          raise_server_exceptions=False)
        response = http.get("/api/run")
        assert response.status_code == 200
        row = response.json()["pairs"][0]
        assert row["prompt"] == "a prompt \ufffd with a surrogate"
        reasons = [j["forward"]["reason"] or "" for r in response.json()["pairs"] for j in r["judges"].values()
                   if j["forward"]]
        odd = [r for r in reasons if r.startswith("odd \ufffd answer")]
        assert len(odd) == 1 and len(odd[0]) < 25_000  # bounded, with the cut marked
        assert http.post("/api/exemplars", json={"n": 0, "preferred": "A", "rationale": "clear reason"}).status_code == 200
    finally:
        book.close()
    assert len(read_guide(tmp_path / "ex.jsonl", "t2i").exemplars) == 1


def test_text_and_paths_that_are_not_utf8_can_be_labelled(tmp_path):
    """A pair file with a lone surrogate in its prompt (and, refused, in an id), and a folder whose names are not UTF-8
    (Latin-1 on a POSIX file system): the page answers, and the seed file is one that
    `arrpo rubric learn` reads, with image paths that still open."""
    import os

    from PIL import Image

    from arrpo.datasets.seeds import read_seeds
    from arrpo.images import load_image

    from .conftest import write_png

    pairs, _ = make_pairs(tmp_path / "data", n=2, edit_last=False)
    records = [json.loads(line) for line in pairs.read_text().splitlines()]
    records[0].update(id="p\ud800", prompt="a \udfff prompt")
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    # an id UTF-8 cannot store is refused at load, as `arrpo judge --pairs` and `arrpo eval` refuse it
    with pytest.raises(LabelInputError, match=r"pairs\.jsonl:1: pair id .* lone surrogate"):
        read_items(pairs)
    records[0]["id"] = "p0"  # a surrogate in the prompt is shown (as U+FFFD) and labelled
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    folder = os.path.join(os.fsencode(tmp_path), b"latin", b"caf\xe9")
    os.makedirs(folder)
    for name, color in ((b"a.png", (200, 0, 0)), (b"b\xff.png", (0, 0, 200))):
        write_png(Path(os.fsdecode(os.path.join(folder, name))), color)

    for spec, out in ((pairs, tmp_path / "o1" / "seeds.jsonl"), (os.fsdecode(os.path.dirname(folder)), tmp_path / "o2" / "seeds.jsonl")):
        items = read_items(spec)
        book = LabelBook(items, out)
        try:
            http = TestClient(create_label_app(book), base_url="http://127.0.0.1:8765", raise_server_exceptions=False)
            state = http.get("/api/state")
            assert state.status_code == 200 and "\ufffd" in state.json()["current"]["prompt"]
            answered = raw_post(http, "/api/answer", json.dumps({"id": items[0].id, "choice": "left"}).encode())
            assert answered.status_code == 200, answered.text
        finally:
            book.close()
        seeds = read_seeds(out).pairs
        assert len(seeds) == 1
        assert isinstance(load_image(seeds[0].image_a.path).to_pil(), Image.Image)
