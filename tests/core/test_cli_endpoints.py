"""Several endpoints for one model from the command line and config files: ``--endpoint`` repeated,
``ARRPO_ENDPOINT`` as a comma-separated list, YAML lists; an endpoint killed in the middle of
``arrpo judge --pairs`` loses and duplicates nothing; bad lists are one-line errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from PIL import Image

from arrpo.testing.scripted_server import ChatRequest, Reply
from tests.backends.test_endpoint_pool import dead_url
from tests.core.test_cli_judge import arrpo, brighter_wins

GRAYS = (20, 60, 100, 140, 180, 220)


@pytest.fixture
def gray_pairs(tmp_path: Path) -> Path:
    """30 pairs of gray images with a known brighter one, as a ``--pairs`` file."""
    for gray in GRAYS:
        Image.new("RGB", (16, 16), (gray, gray, gray)).save(tmp_path / f"g{gray}.png")
    lines = []
    for n in range(30):
        a, b = GRAYS[n % 6], GRAYS[(n * 5 + 1) % 6]
        if a == b:
            b = GRAYS[(n + 3) % 6]
        lines.append({"id": f"p{n}", "prompt": f"prompt {n}", "image_a": f"g{a}.png", "image_b": f"g{b}.png"})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def verdict_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def killed_after(count: int, holder: dict):
    """A brighter-wins handler whose server is stopped (in another thread) at its ``count``-th request."""
    judge = brighter_wins(delay=0.05)
    seen = {"n": 0}

    def handler(request: ChatRequest) -> Reply:
        seen["n"] += 1
        if seen["n"] == count:
            threading.Thread(target=holder["server"].stop, daemon=True).start()
        return judge(request)

    return handler


def test_judge_pairs_over_three_endpoints_with_one_killed_midway(gray_pairs, scripted_server, tmp_path):
    holder: dict = {}
    steady = [scripted_server(brighter_wins(delay=0.05)) for _ in range(2)]
    doomed = holder["server"] = scripted_server(killed_after(4, holder))
    urls = [steady[0].base_url, doomed.base_url, steady[1].base_url]
    out = tmp_path / "pooled.jsonl"
    result = arrpo("judge", "--pairs", str(gray_pairs), "--out", str(out), "--model", "m", "--no-cache",
                   "--max-retries", "0", "--max-concurrency", "2", "--order", "given",
                   *(arg for url in urls for arg in ("--endpoint", url)))
    assert result.returncode == 0, result.stderr
    assert doomed.base_url in result.stderr  # the warning names the endpoint that went away
    pooled = verdict_lines(out)
    ids = [v["id"] for v in pooled]
    assert sorted(ids) == sorted(f"p{n}" for n in range(30))  # 0 lost, 0 duplicated
    assert all(v["winner"] in ("A", "B") for v in pooled)

    single = scripted_server(brighter_wins())
    reference = tmp_path / "single.jsonl"
    again = arrpo("judge", "--pairs", str(gray_pairs), "--out", str(reference), "--model", "m", "--no-cache",
                  "--order", "given", "--endpoint", single.base_url)
    assert again.returncode == 0, again.stderr
    assert {v["id"]: v["winner"] for v in pooled} == {v["id"]: v["winner"] for v in verdict_lines(reference)}
    assert 4 <= doomed.requests < 30 and sum(s.requests for s in steady) >= 30 - doomed.requests


def test_arrpo_endpoint_env_holds_a_comma_separated_list_and_a_dead_one_is_named(gray_pairs, scripted_server, tmp_path):
    alive = scripted_server(brighter_wins())
    dead = dead_url()
    out = tmp_path / "v.jsonl"
    result = arrpo("judge", "--pairs", str(gray_pairs), "--out", str(out), "--no-cache", "--max-retries", "0",
                   env={"ARRPO_ENDPOINT": f"{dead}, {alive.base_url}/", "ARRPO_MODEL": "m"})
    assert result.returncode == 0, result.stderr
    assert dead in result.stderr and "cooling down" in result.stderr
    assert len(verdict_lines(out)) == 30 and alive.requests == 30


@pytest.mark.parametrize(("endpoints", "message"), [
    (["http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/"], "--endpoint: the endpoint list has http://127.0.0.1:9/v1 twice"),
    (["127.0.0.1:9"], "--endpoint: endpoint '127.0.0.1:9' is not an HTTP URL"),
    (["http://h:port/v1"], "has a port that is not a number"),
    ([","], "--endpoint: the endpoint list is empty"),
])
def test_bad_endpoint_options_are_one_line_errors(gray_pairs, tmp_path, endpoints, message):
    result = arrpo("judge", "--pairs", str(gray_pairs), "--out", str(tmp_path / "v.jsonl"), "--model", "m",
                   *(arg for url in endpoints for arg in ("--endpoint", url)))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "v.jsonl").exists()


def test_eval_and_rpo_configs_take_an_endpoint_list(tmp_path):
    from arrpo.eval.config import ConfigError, load_config
    from arrpo.rl.config import JudgeConfig

    path = tmp_path / "judges.yaml"
    path.write_text(yaml.safe_dump({
        "backend": {"endpoint": ["http://a:8000/v1", "http://b:8000/v1/"], "model": "m"},
        "judges": [{"name": "direct", "kind": "direct"}],
    }))
    config = load_config(path)
    assert config.backend_for(config.judges[0]).endpoints() == ["http://a:8000/v1", "http://b:8000/v1"]
    path.write_text(yaml.safe_dump({
        "backend": {"endpoint": ["http://a:8000/v1", "http://a:8000/v1"], "model": "m"},
        "judges": [{"name": "direct", "kind": "direct"}],
    }))
    with pytest.raises(ConfigError, match="http://a:8000/v1 twice"):
        load_config(path)
    judge = JudgeConfig(backend={"endpoint": "http://a:1/v1,http://b:2/v1", "model": "m"})
    assert judge.backend.endpoint == ["http://a:1/v1", "http://b:2/v1"]
