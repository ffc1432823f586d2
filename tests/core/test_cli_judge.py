"""``arrpo judge`` through the real command line (subprocesses), including resumable batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from arrpo.testing.scripted_server import ChatRequest, Reply
from tests.core.test_judge_server import brightness

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ARRPO_", "OPENAI_"))}


def arrpo(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    merged = {**ENV, "ARRPO_CACHE_DIR": kwargs.pop("cache_dir", "/nonexistent-cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, text=True,
                          env=merged, timeout=120, **kwargs)


def brighter_wins(delay: float = 0.0):
    def handler(request: ChatRequest) -> Reply:
        first, second = request.images()[-2:]
        rank = "[1, 2]" if brightness(first) > brightness(second) else "[2, 1]"
        return Reply(text=f'{{"rank": {rank}, "reason": "brighter is better"}}', delay=delay)

    return handler


@pytest.fixture
def pair_dir(tmp_path: Path) -> Path:
    for name, value in (("bright", 220), ("dark", 30), ("src", 128)):
        Image.new("RGB", (24, 24), (value, value, value)).save(tmp_path / f"{name}.png")
    Image.effect_noise((64, 64), 40).convert("RGB").save(tmp_path / "noise.png")
    noise = (tmp_path / "noise.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(noise[: len(noise) // 2])
    return tmp_path


def test_single_pair_prints_winner_and_reason(pair_dir, scripted_server, tmp_path):
    server = scripted_server(brighter_wins())
    result = arrpo("judge", str(pair_dir / "dark.png"), str(pair_dir / "bright.png"), "--prompt", "a lamp",
                   "--endpoint", server.base_url, "--model", "m", "--no-cache", "--order", "both",
                   "--max-tokens", "64")
    assert result.returncode == 0, result.stderr
    assert "winner: B" in result.stdout and "brighter is better" in result.stdout
    assert server.seen[-1].body["max_tokens"] == 64


def test_control_characters_in_a_reason_do_not_reach_the_terminal(pair_dir, scripted_server):
    server = scripted_server(lambda request: Reply(text='{"rank": [2, 1], "reason": "\\u001b[2J\\u001b]0;pwned\\u0007 x \\ud800"}'))
    result = arrpo("judge", str(pair_dir / "dark.png"), str(pair_dir / "bright.png"), "--prompt", "a lamp",
                   "--endpoint", server.base_url, "--model", "m", "--no-cache")
    assert result.returncode == 0, result.stderr
    assert "winner: B" in result.stdout
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\\x1b[2J" in result.stdout


def test_single_edit_pair_as_json(pair_dir, scripted_server, tmp_path):
    server = scripted_server(brighter_wins())
    rubric = tmp_path / "rubric.json"
    rubric.write_text(json.dumps({"themes": [{"theme": "Brightness", "tips": ["brighter wins"]}]}))
    result = arrpo("judge", str(pair_dir / "bright.png"), str(pair_dir / "dark.png"), "-p", "brighten",
                   "--source", str(pair_dir / "src.png"), "--rubric", str(rubric), "--json",
                   env={"ARRPO_ENDPOINT": server.base_url, "ARRPO_MODEL": "m"}, cache_dir=str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["winner"] == "A"
    sent = server.seen[-1]
    assert len(sent.image_bytes) == 3 and "Theme: Brightness" in sent.text and "Image BASE" in sent.text


def test_without_endpoint_says_how_to_configure(pair_dir, tmp_path):
    offline = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = arrpo("judge", str(pair_dir / "bright.png"), str(pair_dir / "dark.png"), "--prompt", "x", env=offline)
    assert result.returncode == 2
    assert "No VLM endpoint is configured" in result.stderr and "--endpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_inputs_give_clear_errors(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    common = ["--endpoint", server.base_url, "--model", "m", "--no-cache"]
    broken = arrpo("judge", str(pair_dir / "broken.png"), str(pair_dir / "dark.png"), "-p", "x", *common)
    assert broken.returncode == 2 and "corrupt or truncated" in broken.stderr
    missing = arrpo("judge", str(pair_dir / "nope.png"), str(pair_dir / "dark.png"), "-p", "x", *common)
    assert missing.returncode == 2 and "no such image file" in missing.stderr
    bad_order = arrpo("judge", str(pair_dir / "bright.png"), str(pair_dir / "dark.png"), "-p", "x",
                      "--order", "sideways", *common)
    assert bad_order.returncode == 2 and "--order" in bad_order.stderr
    bad_rubric = arrpo("judge", str(pair_dir / "bright.png"), str(pair_dir / "dark.png"), "-p", "x",
                       "--rubric", str(pair_dir / "bright.png"), *common)
    assert bad_rubric.returncode == 2 and "cannot read rubric" in bad_rubric.stderr
    no_out = arrpo("judge", "--pairs", str(pair_dir / "p.jsonl"), *common)
    assert no_out.returncode == 2 and "--out" in no_out.stderr
    for result in (broken, missing, bad_order, bad_rubric, no_out):
        assert "Traceback" not in result.stderr


def test_invalid_answer_exits_1(pair_dir, scripted_server):
    server = scripted_server(lambda request: Reply(text="no idea"))
    result = arrpo("judge", str(pair_dir / "bright.png"), str(pair_dir / "dark.png"), "-p", "x",
                   "--endpoint", server.base_url, "--model", "m", "--no-cache")
    assert result.returncode == 1 and "winner: invalid" in result.stdout and "no JSON" in result.stdout


def write_pairs(pair_dir: Path, n: int) -> Path:
    lines = []
    for i in range(n):
        a, b = ("bright.png", "dark.png") if i % 2 == 0 else ("dark.png", "bright.png")
        lines.append({"id": f"p{i}", "prompt": f"prompt {i}", "image_a": a, "image_b": b})
    lines.append({"id": "bad", "prompt": "x", "image_a": "broken.png", "image_b": "dark.png"})
    lines.append({"id": "edit", "instruction": "brighten", "source": "src.png",
                  "image_a": "dark.png", "image_b": "bright.png"})
    path = pair_dir / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def latest(out: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in records}


def test_batch_judges_everything_and_records_bad_input(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    pairs, out = write_pairs(pair_dir, 6), pair_dir / "verdicts.jsonl"
    result = arrpo("judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url,
                   "--model", "m", "--no-cache", "--order", "given")
    assert result.returncode == 0, result.stderr
    verdicts = latest(out)
    assert len(verdicts) == 8
    assert [verdicts[f"p{i}"]["winner"] for i in range(6)] == ["A", "B"] * 3
    assert verdicts["edit"]["winner"] == "B"
    assert verdicts["bad"]["winner"] == "invalid" and "bad input" in verdicts["bad"]["invalid_reason"]
    assert server.requests == 7
    again = arrpo("judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url,
                  "--model", "m", "--no-cache", "--order", "given")
    assert again.returncode == 0 and server.requests == 7 and "already judged" in again.stderr
    # another order policy decides other verdicts: the old file is set aside (kept), all are judged again
    old = out.read_bytes()
    changed = arrpo("judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url,
                    "--model", "m", "--no-cache", "--order", "random")
    assert changed.returncode == 0, changed.stderr
    message = " ".join(changed.stderr.split())
    assert "changed since the last run (order: 'given' -> 'random')" in message and "set aside" in message
    assert server.requests == 14 and len(latest(out)) == 8
    assert [p.read_bytes() for p in pair_dir.glob("verdicts.stale-*.jsonl")] == [old]
    assert json.loads((pair_dir / "verdicts.jsonl.settings.json").read_text())["order"] == "random"


def test_batch_resumes_after_kill(pair_dir, scripted_server):
    server = scripted_server(brighter_wins(delay=0.4))
    pairs, out = write_pairs(pair_dir, 12), pair_dir / "verdicts.jsonl"
    args = ["judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url,
            "--model", "m", "--no-cache", "--order", "given", "--max-concurrency", "2"]
    env = {**ENV, "ARRPO_CACHE_DIR": "/nonexistent-cache"}
    process = subprocess.Popen([sys.executable, "-m", "arrpo", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = set(latest(out))
    assert 4 <= len(done_before) < 14
    asked_before = server.requests
    result = arrpo(*args)
    assert result.returncode == 0, result.stderr
    verdicts = latest(out)
    assert set(verdicts) == {f"p{i}" for i in range(12)} | {"bad", "edit"}
    assert all(verdicts[f"p{i}"]["winner"] == ("A" if i % 2 == 0 else "B") for i in range(12))
    newly_asked = server.requests - asked_before
    assert newly_asked <= 14 - len(done_before - {"bad"})  # finished pairs were not asked again
    assert "resuming" in result.stderr


def test_retry_invalid_asks_again(pair_dir, scripted_server):
    failing = {"on": True}

    def handler(request: ChatRequest) -> Reply:
        return Reply(status=500) if failing["on"] else brighter_wins()(request)

    server = scripted_server(handler)
    pairs, out = write_pairs(pair_dir, 2), pair_dir / "verdicts.jsonl"
    args = ["judge", "--pairs", str(pairs), "--out", str(out), "--endpoint", server.base_url, "--model", "m",
            "--no-cache", "--order", "given", "--max-retries", "0"]
    first = arrpo(*args)
    assert first.returncode == 1  # every verdict invalid: the run failed, after writing them all
    assert "4 of 4 verdicts are invalid" in first.stderr and "server answered 500" in first.stderr
    assert "Traceback" not in first.stderr
    assert {r["winner"] for r in latest(out).values()} == {"invalid"}
    failing["on"] = False
    assert arrpo(*args, "--retry-invalid").returncode == 0
    verdicts = latest(out)
    assert verdicts["p0"]["winner"] == "A" and verdicts["p1"]["winner"] == "B"
    assert verdicts["bad"]["winner"] == "invalid"


def test_malformed_pair_file_names_the_line(pair_dir, scripted_server):
    server = scripted_server(brighter_wins())
    pairs = pair_dir / "bad.jsonl"
    pairs.write_text('{"id": 1, "prompt": "x", "image_a": "a.png", "image_b": "b.png"}\n{"id": 2, "prompt": "y"}\n')
    result = arrpo("judge", "--pairs", str(pairs), "--out", str(pair_dir / "o.jsonl"),
                   "--endpoint", server.base_url, "--model", "m", "--no-cache")
    assert result.returncode == 2 and "bad.jsonl:2" in result.stderr and "image_a" in result.stderr


def test_core_imports_without_torch():
    code = ("import sys, arrpo, arrpo.judge, arrpo.cli, arrpo.vlm.settings, arrpo.datasets.pairs; "
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'ray', 'fastapi') if m in sys.modules]; "
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_max_answer_chars_bounds_what_a_verdict_keeps(pair_dir, scripted_server):
    long_reason = "because " + "x" * 3000
    server = scripted_server(lambda request: Reply(text=json.dumps({"rank": [2, 1], "reason": long_reason})))
    common = [str(pair_dir / "dark.png"), str(pair_dir / "bright.png"), "--prompt", "a lamp", "--endpoint",
              server.base_url, "--model", "m", "--no-cache", "--order", "given", "--json"]
    capped = arrpo("judge", *common, "--max-answer-chars", "200")
    assert capped.returncode == 0, capped.stderr
    verdict = json.loads(capped.stdout)
    assert verdict["winner"] == "B" and verdict["reason"].startswith("because xxx")
    assert len(verdict["reason"]) < 260 and "characters cut" in verdict["reason"]
    assert len(verdict["answers"][0]["raw"]) < 260
    default = json.loads(arrpo("judge", *common).stdout)
    assert default["reason"] == long_reason  # under the default 16,000
    refused = arrpo("judge", *common, "--max-answer-chars", "0")
    assert refused.returncode == 2 and "--max-answer-chars" in refused.stderr
