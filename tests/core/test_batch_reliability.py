"""``arrpo judge`` batches that must not lose, duplicate or silently shrink work (issue 10).

Through the real command line: resume with a complete last line left without its newline and
with a torn one, duplicate pair ids, a bad ``--out``, an empty pair file, the invalid-share exit,
a bad option, and local image paths that are not image files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from arrpo.jsonl import JsonlWriter, iter_records
from arrpo.testing.scripted_server import ChatRequest, Reply
from tests.core.test_cli_judge import arrpo, brighter_wins, latest


@pytest.fixture
def pair_dir(tmp_path: Path) -> Path:
    for name, value in (("bright", 220), ("dark", 30)):
        Image.new("RGB", (24, 24), (value, value, value)).save(tmp_path / f"{name}.png")
    return tmp_path


def write_pairs(folder: Path, n: int, extra: list[dict] | None = None) -> Path:
    lines = [{"id": f"p{i}", "prompt": f"prompt {i}", "image_a": "bright.png", "image_b": "dark.png"}
             for i in range(n)]
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in [*lines, *(extra or [])]))
    return path


def batch(server, pairs: Path, out: Path, *extra: str):
    return arrpo("judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url,
                 "--model", "m", "--no-cache", "--order", "given", *extra)


def verdict_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_complete_last_line_without_newline_is_kept_on_resume(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    pairs, out = write_pairs(pair_dir, 4), pair_dir / "verdicts.jsonl"
    assert batch(server, pairs, out).returncode == 0
    lines = out.read_bytes().splitlines(keepends=True)
    # as a kill between the record and its newline leaves it: three lines, the last without "\n"
    out.write_bytes(b"".join(lines[:2]) + lines[2].rstrip(b"\n"))
    asked = server.requests
    result = batch(server, pairs, out)
    assert result.returncode == 0, result.stderr
    records = verdict_lines(out)
    assert sorted(r["id"] for r in records) == ["p0", "p1", "p2", "p3"]  # none lost, none twice
    assert server.requests - asked == 1  # only the pair without a line was asked
    assert out.read_bytes().endswith(b"\n")


def test_torn_last_line_is_dropped_and_redone(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    pairs, out = write_pairs(pair_dir, 3), pair_dir / "verdicts.jsonl"
    assert batch(server, pairs, out).returncode == 0
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # killed mid-line
    asked = server.requests
    result = batch(server, pairs, out)
    assert result.returncode == 0, result.stderr
    assert server.requests - asked == 1
    records = verdict_lines(out)  # every line parses: the torn half is gone
    assert sorted(r["id"] for r in records) == ["p0", "p1", "p2"]


def test_jsonl_writer_repairs_the_tail_and_always_writes_utf8(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_bytes(b'{"id":"a"}\n{"id":"b"}')  # complete, newline missing
    with JsonlWriter(path) as writer:
        writer.write({"id": "c", "reason": "lone surrogate \ud800 and emoji \U0001F600"})
    assert [r["id"] for r in iter_records(path)] == ["a", "b", "c"]
    raw = path.read_bytes()
    raw.decode("utf-8")  # valid UTF-8 throughout
    assert list(iter_records(path))[-1]["reason"] == "lone surrogate \ud800 and emoji \U0001F600"
    path.write_bytes(raw + '{"id":"d","reason":"é'.encode()[:-1])  # torn inside a 2-byte character
    assert [r["id"] for r in iter_records(path)] == ["a", "b", "c"]
    with JsonlWriter(path) as writer:
        writer.write({"id": "e"})
    assert [r["id"] for r in iter_records(path)] == ["a", "b", "c", "e"]


def test_duplicate_ids_are_refused_with_their_line_numbers(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    pairs = write_pairs(pair_dir, 3, extra=[{"id": "p1", "prompt": "again", "image_a": "dark.png",
                                             "image_b": "bright.png"}])
    out = pair_dir / "verdicts.jsonl"
    result = batch(server, pairs, out)
    assert result.returncode == 2
    assert "duplicate pair id 'p1'" in result.stderr and "pairs.jsonl:4" in result.stderr
    assert "line 2" in result.stderr and "Traceback" not in result.stderr
    assert server.requests == 0 and not out.exists()


@pytest.mark.parametrize("bad_id, problem", [("p\ud800x", "lone surrogate (U+D800)"),
                                              ("p\x1b[31m", "control character U+001B"),
                                              ("two\nlines", "control character U+000A")])
def test_ids_a_verdict_file_cannot_hold_are_refused_with_their_line(pair_dir, scripted_server, bad_id, problem):
    server = scripted_server(brighter_wins())
    pairs = write_pairs(pair_dir, 2, extra=[{"id": bad_id, "prompt": "p", "image_a": "dark.png",
                                             "image_b": "bright.png"}])
    out = pair_dir / "verdicts.jsonl"
    result = batch(server, pairs, out)
    assert result.returncode == 2, result.stderr
    assert "pairs.jsonl:3" in result.stderr and problem in result.stderr
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr.replace("\\x1b", "")
    assert server.requests == 0 and not out.exists()


@pytest.mark.parametrize("case", ["out is pairs", "out is a directory", "empty pairs", "missing pairs"])
def test_bad_batch_files_are_clear_errors(pair_dir, scripted_server, case):
    server = scripted_server(brighter_wins())
    pairs, out = write_pairs(pair_dir, 2), pair_dir / "verdicts.jsonl"
    expected = {
        "out is pairs": "is the pair file itself",
        "out is a directory": "is a directory",
        "empty pairs": "no pairs in the file",
        "missing pairs": "no such pair file",
    }[case]
    if case == "out is pairs":
        out = pair_dir / "." / "pairs.jsonl"
    elif case == "out is a directory":
        out = pair_dir
    elif case == "empty pairs":
        pairs.write_text("\n\n")
    else:
        pairs = pair_dir / "nope.jsonl"
    before = pairs.read_bytes() if pairs.exists() else None
    result = batch(server, pairs, out)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "already judged" not in result.stderr
    assert "Traceback" not in result.stderr and server.requests == 0
    if before is not None:
        assert pairs.read_bytes() == before  # the pair file is never written to


def test_mostly_invalid_batch_exits_1_with_the_cause_after_writing_everything(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    missing = [{"id": f"m{i}", "prompt": "x", "image_a": f"gone{i}.png", "image_b": "dark.png"} for i in range(3)]
    pairs, out = write_pairs(pair_dir, 2, extra=missing), pair_dir / "verdicts.jsonl"
    result = batch(server, pairs, out)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "3 of 5 verdicts are invalid" in last and "no such image file" in last
    assert "Traceback" not in result.stderr
    assert len(latest(out)) == 5  # written first
    tolerant = batch(server, pairs, out, "--max-invalid-share", "0.8")
    assert tolerant.returncode == 0 and "already judged" in tolerant.stderr


def test_server_down_fails_the_batch_naming_the_cause(pair_dir):
    pairs, out = write_pairs(pair_dir, 3), pair_dir / "verdicts.jsonl"
    result = arrpo("judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", "http://127.0.0.1:9/v1",
                   "--model", "m", "--no-cache", "--max-retries", "0", "--timeout", "5")
    assert result.returncode == 1
    assert "3 of 3 verdicts are invalid" in result.stderr and "connection failed" in result.stderr
    assert len(latest(out)) == 3 and "Traceback" not in result.stderr


def test_hostile_prompt_in_a_pair_file_is_sent_as_valid_utf8(pair_dir, scripted_server):
    """A lone surrogate in a prompt (UTF-8 cannot encode it) is sent as U+FFFD: the pair is judged
    and the batch goes on (a surrogate in an *id* is refused at load instead)."""
    server = scripted_server(brighter_wins())
    hostile = {"id": "h", "prompt": "\ud800 cut emoji", "image_a": "bright.png", "image_b": "dark.png"}
    pairs, out = write_pairs(pair_dir, 3, extra=[hostile]), pair_dir / "verdicts.jsonl"
    result = batch(server, pairs, out)
    assert result.returncode == 0, result.stderr
    verdicts = latest(out)
    assert set(verdicts) == {"p0", "p1", "p2", "h"}
    assert all(verdicts[key]["winner"] == "A" for key in ("p0", "p1", "p2", "h"))
    assert any("\ufffd cut emoji" in request.text for request in server.seen)


def test_empty_prompt_and_bad_max_pixels_are_refused(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    common = ["--endpoint", server.base_url, "--model", "m", "--no-cache"]
    images = [str(pair_dir / "bright.png"), str(pair_dir / "dark.png")]
    empty = arrpo("judge", *images, "--prompt", "", *common)
    assert empty.returncode == 2 and "prompt is empty" in empty.stderr
    blank = arrpo("judge", *images, "--prompt", "   ", *common)
    assert blank.returncode == 2 and "prompt is empty" in blank.stderr
    pixels = arrpo("judge", *images, "--prompt", "x", "--max-pixels", "-5", *common)
    assert pixels.returncode == 2 and "--max-pixels" in pixels.stderr
    share = arrpo("judge", "--pairs", "p.jsonl", "--out", "o.jsonl", "--max-invalid-share", "2", *common)
    assert share.returncode == 2 and "--max-invalid-share" in share.stderr
    for result in (empty, blank, pixels, share):
        assert "Traceback" not in result.stderr
    assert server.requests == 0


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_image_paths_that_are_not_files_say_what_they_are(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    common = ["-p", "x", "--endpoint", server.base_url, "--model", "m", "--no-cache"]
    folder = arrpo("judge", str(pair_dir), str(pair_dir / "dark.png"), *common)
    assert folder.returncode == 2 and "is a directory, not an image file" in folder.stderr
    device = arrpo("judge", "/dev/null", str(pair_dir / "dark.png"), *common)
    assert device.returncode == 2 and "/dev/null: is a character device" in device.stderr
    for result in (folder, device):
        assert "no such image file" not in result.stderr and "Traceback" not in result.stderr


HOSTILE = {
    "surrogate": '{"rank": [2, 1], "reason": "\\ud800 x"}',
    "huge rank": '{"rank": [' + "9" * 5000 + ', 1], "reason": "huge"}',
    "deep": '{"rank": [2, 1], "reason": ' + "[" * 50_000 + "]" * 50_000 + "}",
    "malformed": '{"rank": [2, 1], "reason": "unterminated',
    "empty": "",
    "refusal": "I'm sorry, I can't help with comparing these images.",
    "out of range": '{"rank": [5, 9], "reason": "?"}',
}


def test_hostile_answers_each_end_in_one_verdict_line(pair_dir, scripted_server):
    """Every pair gets exactly one line, the run never stops, nothing is printed as a traceback."""
    answers = list(HOSTILE.values())

    def handler(request: ChatRequest) -> Reply:
        index = next(i for i in range(len(answers)) if f"hostile-{i}-" in request.text)
        return Reply(text=answers[index])

    server = scripted_server(handler)
    extra = [{"id": f"h{i}", "prompt": f"hostile-{i}-", "image_a": "bright.png", "image_b": "dark.png"}
             for i in range(len(answers))]
    pairs = write_pairs(pair_dir, 0, extra=extra)
    out = pair_dir / "verdicts.jsonl"
    result = batch(server, pairs, out, "--max-invalid-share", "1")
    assert "Traceback" not in result.stderr
    records = verdict_lines(out)  # every line parses, and is valid UTF-8 (read_text would fail otherwise)
    assert sorted(r["id"] for r in records) == sorted(e["id"] for e in extra)
    assert all(r["winner"] in ("A", "B", "tie", "invalid") for r in records)
    rerun = batch(server, pairs, out, "--max-invalid-share", "1")
    assert "already judged" in rerun.stderr and len(verdict_lines(out)) == len(extra)


def test_single_pair_with_a_lone_surrogate_prints_valid_utf8(pair_dir, scripted_server):
    server = scripted_server(lambda request: Reply(text=HOSTILE["surrogate"]))
    common = [str(pair_dir / "bright.png"), str(pair_dir / "dark.png"), "-p", "x", "--order", "given",
              "--endpoint", server.base_url, "--model", "m", "--no-cache"]
    shown = arrpo("judge", *common)
    assert "Traceback" not in shown.stderr and shown.returncode in (0, 1)
    as_json = arrpo("judge", *common, "--json")
    assert "Traceback" not in as_json.stderr and as_json.returncode in (0, 1)
    assert json.loads(as_json.stdout)["winner"] in ("A", "B", "invalid")
