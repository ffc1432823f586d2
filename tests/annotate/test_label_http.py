"""``arrpo label`` over HTTP and the command line: answers, undo, resume, agreement, bad input,
path traversal and access rules."""

from __future__ import annotations

import json
import re
import socket

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from arrpo.annotate.items import LabelInputError, read_items
from arrpo.annotate.label_app import create_label_app
from arrpo.annotate.labels import LabelBook, log_path_for, read_labels, shown_left
from arrpo.annotate.stats import cohen_kappa
from arrpo.cli import app as cli
from arrpo.datasets.seeds import read_seeds

from .conftest import BLUE, RED, make_pairs, write_png

runner = CliRunner()
TOKEN = "t" * 24


def client(book: LabelBook, token: str | None = None) -> TestClient:
    return TestClient(create_label_app(book, token=token), base_url="http://127.0.0.1:8765")


@pytest.fixture
def book(tmp_path):
    pairs, _ = make_pairs(tmp_path / "data", n=4)
    made = LabelBook(read_items(pairs), tmp_path / "out" / "seeds.jsonl", seed=1)
    yield made
    made.close()


def answer(http: TestClient, choice: str) -> dict:
    state = http.get("/api/state").json()
    response = http.post("/api/answer", json={"id": state["current"]["id"], "choice": choice, "seconds": 1.5})
    assert response.status_code == 200, response.text
    return response.json()


def test_answers_map_sides_back_to_a_and_b_and_undo_is_append_only(book, tmp_path):
    http = client(book)
    state = http.get("/api/state").json()
    assert state["current"]["id"] == "p0" and "image_a" not in json.dumps(state)  # the page never learns A/B
    answer(http, "left")
    answer(http, "right")
    after_undo = http.post("/api/undo", json={}).json()
    assert after_undo["undone"] == "p1" and after_undo["current"]["id"] == "p1"
    answer(http, "left")
    answer(http, "skip")
    log = [json.loads(line) for line in log_path_for(book.out).read_text().splitlines()]
    assert [r["event"] for r in log] == ["label", "label", "undo", "label", "skip"]
    expected = {pid: shown_left(1, "", pid) for pid in ("p0", "p1")}  # "left" chosen both times
    assert {p.id: p.preferred for p in read_seeds(book.out).pairs} == expected
    assert read_labels(book.out) == expected == read_labels(log_path_for(book.out))
    # a fresh session over the same files resumes where this one stopped
    book.close()
    again = LabelBook(book.items, book.out, seed=1)
    assert again.current()[1].id == "p3" and again.progress() == {
        "total": 4, "labelled": 2, "skipped": 1, "ties": 0, "left": 1}
    again.close()


def test_a_torn_log_and_a_lost_seed_file_lose_no_answer(book):
    http = client(book)
    answer(http, "left")
    answer(http, "right")
    book.close()
    with log_path_for(book.out).open("a") as log:
        log.write('{"event": "label", "id": "p2", "lab')   # a write cut short by a kill
    book.out.write_text("")                               # killed before the seed file was rebuilt
    again = LabelBook(book.items, book.out, seed=1)
    assert [p.id for p in read_seeds(book.out).pairs] == ["p0", "p1"]
    assert again.current()[1].id == "p2"
    again.answer("p2", "left")
    assert len(read_seeds(book.out).pairs) == 3
    again.close()


def test_bad_answers_are_refused(book):
    http = client(book)
    assert http.post("/api/answer", json={"id": "nope", "choice": "left"}).status_code == 409
    assert http.post("/api/answer", json={"id": "p0", "choice": "tie"}).status_code == 409  # ties off
    assert http.post("/api/answer", json={"id": "p0", "choice": "up"}).status_code == 409
    assert http.post("/api/answer", json=["p0"]).status_code == 422
    assert http.post("/api/answer", json={"id": "p0", "choice": "left", "seconds": "NaN"}).status_code == 200
    second = http.post("/api/answer", json={"id": "p0", "choice": "right"})
    assert second.status_code == 409 and "already answered" in second.json()["error"]["message"]
    assert json.loads(log_path_for(book.out).read_text())["seconds"] is None
    # cross-site forms cannot post: only JSON bodies are accepted
    form = http.post("/api/answer", content=b"id=p1&choice=left", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415


@pytest.mark.parametrize("path", [
    "/api/image/0/../../../../etc/passwd", "/api/image/0/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/api/image/0/a",
    "/api/image/-1/left", "/api/image/99/left", "/api/image/0/source", "/api/image/x/left",
    "/pages/label.html", "/static/../../etc/passwd", "/..%2f..%2fetc%2fpasswd", "/api/image/0/left/../../x",
])
def test_no_path_reaches_the_file_system(book, path):
    response = client(book).get(path)
    assert response.status_code in (404, 422)
    assert b"root:" not in response.content and b"PNG" not in response.content


def test_images_are_served_by_number_and_side_only(book):
    http = client(book)
    left, right = http.get("/api/image/0/left"), http.get("/api/image/0/right")
    assert left.status_code == right.status_code == 200 and left.headers["content-type"] == "image/png"
    assert left.content != right.content
    assert http.get("/api/image/3/source").status_code == 200  # the edit pair's source


def test_a_listed_file_that_is_not_an_image_is_not_served(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    write_png(tmp_path / "b.png", BLUE)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "x", "prompt": "p", "image_a": "secret.txt", "image_b": "b.png"}) + "\n")
    book = LabelBook(read_items(pairs), tmp_path / "s.jsonl")
    http = client(book)
    served = [http.get(f"/api/image/0/{side}") for side in ("left", "right")]
    assert sorted(r.status_code for r in served) == [200, 422]
    assert all(b"root:" not in r.content for r in served)
    book.close()


def test_host_header_and_token_rules(book):
    foreign = TestClient(create_label_app(book), base_url="http://attacker.example:8765")
    assert foreign.get("/api/state").status_code == 403   # DNS rebinding
    http = client(book, token=TOKEN)
    assert http.get("/health").status_code == 200
    assert http.get("/api/state").status_code == 401
    assert http.get("/api/image/0/left").status_code == 401
    assert http.get("/", params={"token": "wrong" * 5}).status_code == 403
    opened = http.get("/", params={"token": TOKEN}, follow_redirects=False)
    assert opened.status_code == 303 and "httponly" in opened.headers["set-cookie"].lower()
    assert http.get("/api/state").status_code == 200        # the cookie from the redirect
    bearer = client(book, token=TOKEN)
    assert bearer.get("/api/state", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_cli_bad_inputs_exit_2(tmp_path):
    pairs, _ = make_pairs(tmp_path / "data", n=3)
    (tmp_path / "data" / "1_b.png").unlink()
    result = runner.invoke(cli, ["label", str(pairs), "--out", str(tmp_path / "s.jsonl"), "--port", "0"])
    assert result.exit_code == 2 and "image files not found" in result.output and "p1" in result.output
    missing = runner.invoke(cli, ["label", str(tmp_path / "nothing.jsonl"), "--out", "s.jsonl", "--port", "0"])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x", "prompt": "p"}\n')
    bad = runner.invoke(cli, ["label", str(broken), "--out", str(tmp_path / "s.jsonl"), "--port", "0"])
    assert bad.exit_code == 2 and "broken.jsonl:1" in bad.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = runner.invoke(cli, ["label", str(broken), "--out", "s.jsonl", "--port", str(port)])
    assert busy.exit_code == 2 and "already in use" in busy.output
    exposed = runner.invoke(cli, ["label", str(broken), "--out", "s.jsonl", "--host", "0.0.0.0"],
                            env={"ARRPO_ANNOTATE_TOKEN": ""})
    assert exposed.exit_code == 2 and "without a token" in exposed.output
    short = runner.invoke(cli, ["label", str(broken), "--out", "s.jsonl", "--host", "0.0.0.0"],
                          env={"ARRPO_ANNOTATE_TOKEN": "short"})
    assert short.exit_code == 2 and "16 characters" in short.output
    handwritten = tmp_path / "mine.jsonl"
    handwritten.write_text('{"id": "x", "prompt": "p", "image_a": "a.png", "image_b": "b.png", "label": "A"}\n')
    fresh, _ = make_pairs(tmp_path / "fresh", n=2)
    kept = runner.invoke(cli, ["label", str(fresh), "--out", str(handwritten), "--port", "0"])
    assert kept.exit_code == 2 and "Choose another --out" in kept.output
    assert handwritten.read_text().startswith('{"id": "x"')
    name = runner.invoke(cli, ["label", str(broken), "--out", "s.jsonl", "--annotator", "../x"])
    assert name.exit_code == 2 and "plain name" in name.output


def test_inputs_folder_dataset_spec_and_eval_file(tmp_path):
    root = tmp_path / "folder"
    for name, n in (("a_red_square", 3), ("lonely", 1)):
        for k in range(n):
            write_png(root / name / f"m{k}.png", (k * 60, 10, 10))
    write_png(root / "edit-me" / "source.png", (5, 5, 5))
    write_png(root / "edit-me" / "x.png", RED)
    write_png(root / "edit-me" / "y.png", BLUE)
    (root / "edit-me" / "prompt.txt").write_text("make it red\n")
    items = read_items(root)
    assert [i.id for i in items] == ["a_red_square/m0.png|m1.png", "a_red_square/m0.png|m2.png",
                                     "a_red_square/m1.png|m2.png", "edit-me/x.png|y.png"]
    assert items[0].prompt == "a red square" and items[-1].task == "edit" and items[-1].prompt == "make it red"
    assert len(read_items(root, pairs_per_prompt=1, seed=5)) == 2
    with pytest.raises(LabelInputError, match="no prompt folders"):
        read_items(tmp_path / "folder" / "lonely")

    pairs, _ = make_pairs(tmp_path / "data", n=2, edit_last=False)
    lines = [json.loads(line) for line in pairs.read_text().splitlines()]
    lines[0]["label"], lines[1]["label"] = "tie", "B"       # the eval format: ties allowed
    evalfile = tmp_path / "data" / "eval.jsonl"
    evalfile.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [i.given_label for i in read_items(evalfile)] == ["tie", "B"]
    assert [i.given_label for i in read_items(f"jsonl:{evalfile}")] == ["tie", "B"]
    with pytest.raises(LabelInputError, match=r"no such"):
        read_items(f"mjbench:{tmp_path / 'nothing'}")


def test_agreement_command(tmp_path):
    pairs, _ = make_pairs(tmp_path / "data", n=4, edit_last=False)
    items = read_items(pairs)
    choices = {"ann1": ["left", "left", "right", "left"], "ann2": ["left", "right", "right", "skip"]}
    for name, picks in choices.items():
        book = LabelBook(items, tmp_path / f"seeds.{name}.jsonl", annotator=name)
        for item, pick in zip(items, picks, strict=True):
            book.answer(item.id, pick)
        book.close()
    first, second = read_labels(tmp_path / "seeds.ann1.jsonl"), read_labels(tmp_path / "seeds.ann2.jsonl")
    shared = sorted(set(first) & set(second))
    assert len(shared) == 3
    agree = sum(first[i] == second[i] for i in shared)
    result = runner.invoke(cli, ["label", "agreement", str(tmp_path / "seeds.ann1.jsonl"),
                                 str(tmp_path / "seeds.ann2.log.jsonl")])
    assert result.exit_code == 0, result.output
    kappa = cohen_kappa([first[i] for i in shared], [second[i] for i in shared])
    shown = f"{kappa:.3f}" if kappa is not None else "–"
    row = rf"│\s+3\s+│\s+{agree}\s+│\s+{agree / 3:.1%}\s+│\s+{re.escape(shown)}\s+│"
    assert re.search(row, result.output), result.output
    lefts = sum(p == "left" for p in choices["ann1"])
    assert re.search(rf"│\s+4\s+│\s+{lefts} of 4\s+│\s+{lefts / 4:.1%}", result.output), result.output
    lonely = runner.invoke(cli, ["label", "agreement", str(tmp_path / "seeds.ann1.jsonl")])
    assert lonely.exit_code == 2


def test_the_pages_and_the_service_share_one_rule_set_and_one_error_shape(book):
    from arrpo.annotate.web import check_page_bind
    from arrpo.server.auth import MIN_TOKEN_CHARS, UnsafeBindError, check_bind

    short, enough = "k" * (MIN_TOKEN_CHARS - 1), "k" * MIN_TOKEN_CHARS
    for check in (check_bind, check_page_bind):
        with pytest.raises(UnsafeBindError, match=f"at least {MIN_TOKEN_CHARS} characters"):
            check("127.0.0.1", short)
        with pytest.raises(UnsafeBindError, match="without a token"):
            check("0.0.0.0", None)
        check("0.0.0.0", enough)
        check("::1", None)
    http = client(book, token=TOKEN)
    shapes = {
        "no token": http.get("/api/state"),
        "bearer of another scheme": http.get("/api/state", headers={"Authorization": f"Basic {TOKEN}"}),
        "wrong token": http.get("/", params={"token": "wrong" * 5}),
        "no such image": client(book).get("/api/image/99/left"),
        "unknown route": client(book).get("/api/nothing"),
        "form body": client(book).post("/api/answer", content=b"a=b",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"}),
    }
    for name, response in shapes.items():
        error = response.json()["error"]
        assert set(error) == {"status", "code", "message"} and error["status"] == response.status_code, name
    assert [shapes[n].json()["error"]["code"] for n in ("no token", "wrong token", "no such image", "form body")] == [
        "unauthorized", "forbidden", "not_found", "unsupported_media_type"]
