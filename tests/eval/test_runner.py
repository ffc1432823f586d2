"""The runner and CLI: invalid answers, image errors, rubric sources, config errors, resume after kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arrpo.eval.config import ConfigError, load_config
from arrpo.jsonl import iter_records
from arrpo.rubric import Rubric, Theme
from arrpo.testing.scripted_server import Reply
from tests.eval.helpers import write_png

SRC = str(Path(__file__).resolve().parents[2] / "src")
RED, BLUE = (220, 20, 20), (20, 20, 220)


def cli(*args, timeout=60):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "arrpo", *args], capture_output=True, text=True, env=env, timeout=timeout)


def make_dataset(tmp_path: Path, n: int = 6, broken: bool = False) -> Path:
    """Pairs whose preferred image is red; label alternates so A/B position carries no signal."""
    write_png(tmp_path / "red.png", RED)
    write_png(tmp_path / "blue.png", BLUE)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    lines = []
    for i in range(n):
        a, b, label = ("red.png", "blue.png", "A") if i % 2 == 0 else ("blue.png", "red.png", "B")
        if broken and i == 0:
            a = "broken.png"
        lines.append(json.dumps({"id": f"p{i}", "prompt": f"prompt {i}", "image_a": a, "image_b": b,
                                 "label": label, "subset": "even" if i % 2 == 0 else "odd"}))
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def red_is_better(request) -> Reply:
    first = request.images()[-2].getpixel((0, 0))  # Image 1 (after the source image, for edits)
    return Reply(text='{"rank": [1, 2], "reason": "red"}' if first[0] > 128 else '{"rank": [2, 1], "reason": "red"}')


def write_config(tmp_path: Path, url: str, judges: str, extra: str = "") -> Path:
    path = tmp_path / "judges.yaml"
    path.write_text(f"backend: {{endpoint: '{url}', model: m, cache: false, max_retries: 0}}\n{extra}judges:\n{judges}")
    return path


def records(out: Path, judge: str) -> list[dict]:
    return list(iter_records(out / "verdicts" / f"{judge}.jsonl"))


def test_task_rubric_reaches_the_prompt_and_invalid_answers_count_as_wrong(tmp_path, scripted_server):
    rubric = Rubric(themes=[Theme(theme="Redness wins", tips=["prefer red"])])
    rubric.save(tmp_path / "t2i.json")

    def handler(request):
        if "prompt 3" in request.text:
            return Reply(text="I cannot decide.")  # unparseable both times (1 retry)
        return red_is_better(request)

    server = scripted_server(handler)
    config = write_config(tmp_path, server.base_url,
                          "  - {name: direct, kind: direct}\n  - {name: arr, kind: task_rubric, rubric: {t2i: t2i.json}}\n")
    out = tmp_path / "run"
    result = cli("eval", "--dataset", f"jsonl:{make_dataset(tmp_path, broken=True)}", "--judge", str(config),
                 "--out", str(out), "--bootstrap", "50", "--no-progress")
    assert result.returncode == 0, result.stderr
    rubric_requests = [r for r in server.seen if "Redness wins" in r.text]
    assert rubric_requests and all("Redness" not in r.text for r in server.seen if r not in rubric_requests)
    metrics = json.loads((out / "metrics.json").read_text())
    for judge in ("direct", "arr"):
        values = metrics["judges"][judge]["overall"]["values"]
        # p0: broken image (invalid both orders), p3: unparseable (invalid both orders), 4 others right
        assert values["forward"] == pytest.approx(4 / 6) and values["invalid_rate"] == pytest.approx(2 / 6)
        by_id = {r["id"]: r for r in records(out, judge)}
        assert by_id["p0"]["error"].startswith("image error") and by_id["p0"]["forward"]["attempts"] == 0
        assert by_id["p3"]["forward"]["winner"] == "invalid" and by_id["p3"]["forward"]["attempts"] == 2
    info = json.loads((out / "run.json").read_text())
    assert "Redness wins" in info["rubrics"]["arr"]["t2i"]


def test_prompt_rubrics_from_files_and_from_a_provider_module(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    folder = tmp_path / "prompt_rubrics"
    for i in range(4):
        Rubric(themes=[Theme(theme=f"Rubric for pair {i}")], scope="prompt").save(folder / f"p{i}.json")
    (tmp_path / "myprovider.py").write_text(
        "from arrpo.rubric import Rubric, Theme\n"
        "CALLS = []\n"
        "def make(backend, word):\n"
        "    async def write(pair):\n"
        "        CALLS.append(pair.id)\n"
        "        return Rubric(themes=[Theme(theme=f'{word} {pair.prompt}')], scope='prompt')\n"
        "    return write\n")
    judges = ("  - {name: files, kind: prompt_rubrics, provider: files, rubrics_dir: prompt_rubrics}\n"
              "  - {name: written, kind: prompt_rubrics, provider: 'myprovider:make', provider_options: {word: Judge}}\n")
    config = write_config(tmp_path, server.base_url, judges)
    out = tmp_path / "run"
    env_path = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "arrpo", "eval", "--dataset", f"jsonl:{make_dataset(tmp_path, n=5)}", "--judge",
         str(config), "--out", str(out), "--bootstrap", "0", "--no-progress"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC + os.pathsep + env_path})
    assert result.returncode == 0, result.stderr
    files = {r["id"]: r for r in records(out, "files")}
    assert files["p4"]["error"].startswith("no rubric") and files["p1"]["forward"]["correct"]
    assert any("Rubric for pair 2" in r.text for r in server.seen)
    written = records(out, "written")
    assert all(r["forward"]["correct"] and r["rubric_key"] for r in written)
    assert len(list((out / "rubrics" / "written").glob("*.json"))) == 5
    assert any("Judge prompt 4" in r.text for r in server.seen)
    html = (out / "report.html").read_text()
    assert "Judge prompt 4" in html  # prompt-level rubric shown with its pair


def test_writer_provider_writes_one_rubric_per_prompt(tmp_path, scripted_server):
    def handler(request):
        if "Write an evaluation rubric" in request.text:
            caption = request.text.split("Caption:")[-1].strip().splitlines()[0]
            return Reply(text=json.dumps({"themes": [{"theme": f"Shows {caption}", "tips": ["red"]}]}))
        return red_is_better(request)

    server = scripted_server(handler)
    config = write_config(tmp_path, server.base_url, "  - {name: written, kind: prompt_rubrics, provider: writer}\n")
    out = tmp_path / "r"
    args = ("eval", "--dataset", f"jsonl:{make_dataset(tmp_path, n=4)}", "--judge", str(config), "--out", str(out),
            "--no-progress", "--bootstrap", "0")
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    writes = [r for r in server.seen if "Write an evaluation rubric" in r.text]
    assert len(writes) == 4 and len(list((out / "rubrics" / "written").glob("*.json"))) == 4
    judged = [r for r in server.seen if "Evaluation Rubrics" in r.text]
    assert len(judged) == 8 and all("Theme: Shows prompt" in r.text for r in judged)
    assert all(r["forward"]["correct"] and r["reverse"]["correct"] for r in records(out, "written"))
    result = cli(*args, "--retry-invalid")
    assert result.returncode == 0 and len([r for r in server.seen if "Write an evaluation rubric" in r.text]) == 4


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("judges: []\n", "judges"),
    ("judges:\n  - {name: a, kind: task_rubric}\n", "needs 'rubric"),
    ("judges:\n  - {name: a, kind: direct}\n  - {name: a, kind: direct}\n", "unique"),
    ("judges:\n  - {name: 'bad name', kind: direct}\n", "name"),
    ("judges: [\n", "not valid YAML"),
    ("backend: {endpiont: 'http://x/v1'}\njudges:\n  - {name: a, kind: direct}\n",
     r"backend: .*unknown backend setting 'endpiont' \(did you mean 'endpoint'\?\); allowed: kind, endpoint, model"),
    ("judges:\n  - {name: a, kind: direct, backend: {max_retry: 2}}\n",
     r"judges\.0\.backend: .*unknown backend setting 'max_retry' .*allowed: .*max_retries"),
])
def test_config_errors(tmp_path, yaml_text, message):
    path = tmp_path / "j.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_rubric_file_and_missing_endpoint_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("ARRPO_ENDPOINT", raising=False)
    path = tmp_path / "j.yaml"
    path.write_text("judges:\n  - {name: a, kind: direct}\n")
    result = cli("eval", "--dataset", f"jsonl:{make_dataset(tmp_path)}", "--judge", str(path), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "No VLM endpoint" in result.stderr
    path.write_text("backend: {endpoint: 'http://127.0.0.1:9/v1', model: m}\njudges:\n  - {name: a, kind: guide, rubric: nope.json}\n")
    result = cli("eval", "--dataset", f"jsonl:{make_dataset(tmp_path)}", "--judge", str(path), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "nope.json not found" in result.stderr
    result = cli("report", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "not an arrpo eval run directory" in result.stderr


def test_resume_after_kill_does_not_ask_finished_pairs_again(tmp_path, scripted_server):
    def slow(request):
        reply = red_is_better(request)
        reply.delay = 0.15
        return reply

    server = scripted_server(slow)
    config = write_config(tmp_path, server.base_url, "  - {name: direct, kind: direct}\n")
    dataset = make_dataset(tmp_path, n=16)
    out = tmp_path / "run"
    args = ["eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out),
            "--max-concurrency", "2", "--bootstrap", "0", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-m", "arrpo", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    verdicts = out / "verdicts" / "direct.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(iter_records(verdicts))) < 4:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {r["id"] for r in iter_records(verdicts)}
    assert 4 <= len(done) < 16
    before = server.requests
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert server.requests - before == 2 * (16 - len(done))
    final = list(iter_records(verdicts))
    assert len(final) == 16 and len({r["id"] for r in final}) == 16
    assert json.loads((out / "metrics.json").read_text())["judges"]["direct"]["overall"]["values"]["mean"] == 1.0
    again = cli(*args)
    assert again.returncode == 0 and "0 to judge" in again.stderr


def test_the_documented_example_configuration_loads(tmp_path):
    from arrpo.eval.providers import build_source

    example = Path(__file__).resolve().parents[2] / "examples" / "eval" / "judges.yaml"
    config = load_config(example)
    assert [j.name for j in config.judges] == ["direct", "arr"] and config.forward == "preferred_first"
    sources = [build_source(spec, config, backend=None, run_dir=tmp_path) for spec in config.judges]
    sources[1].check_tasks({"t2i"})
    with pytest.raises(ConfigError, match="no rubric for task"):
        sources[1].check_tasks({"edit"})


@pytest.mark.parametrize("forward", ["preferred_first", "given"])
def test_each_order_shows_the_image_its_record_names_first(tmp_path, scripted_server, forward):
    # a judge that always picks Image 1 names, in every order, exactly the image shown first
    from arrpo._sync import run_sync
    from arrpo.datasets import load_pairs
    from arrpo.eval.config import EvalConfig, JudgeSpec
    from arrpo.eval.runner import EvalRunner, build_setups
    from arrpo.vlm import build_backend

    server = scripted_server(lambda request: Reply(text='{"rank": [1, 2], "reason": "first"}'))
    pairs = load_pairs(f"jsonl:{make_dataset(tmp_path, n=4)}")
    assert {p.label for p in pairs} == {"A", "B"}
    config = EvalConfig(judges=[JudgeSpec(name="d", kind="direct")], forward=forward)
    backend = build_backend(server.base_url, "m", cache_path=False, max_retries=0)
    runner = EvalRunner(build_setups(config, tmp_path / "run", {"d": backend}), tmp_path / "run", forward=forward)
    run_sync(runner.run(pairs))
    for record in records(tmp_path / "run", "d"):
        fwd, rev = record["forward"], record["reverse"]
        assert fwd["winner"] == fwd["shown_first"] and rev["winner"] == rev["shown_first"] != fwd["shown_first"]
        expected_first = record["label"] if forward == "preferred_first" else "A"
        assert fwd["shown_first"] == expected_first
        assert fwd["correct"] == (fwd["winner"] == record["label"])


def test_edit_pairs_sharing_an_instruction_get_the_rubric_written_for_their_own_source(tmp_path, scripted_server):
    # the writer writes an edit rubric from the instruction AND the source image: two pairs with the
    # same instruction but different sources must not share one cached rubric
    def handler(request):
        if "Write an evaluation rubric" in request.text:
            red = request.images()[0].getpixel((0, 0))[0] > 128
            return Reply(text=json.dumps({"themes": [{"theme": f"Keep the {'red' if red else 'blue'} source"}]}))
        return red_is_better(request)

    server = scripted_server(handler)
    write_png(tmp_path / "red.png", RED)
    write_png(tmp_path / "blue.png", BLUE)
    rows = [{"id": f"e{i}", "task": "edit", "prompt": "make it night", "source": src, "image_a": "red.png",
             "image_b": "blue.png", "label": "A"} for i, src in enumerate(("red.png", "blue.png"))]
    dataset = tmp_path / "edits.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_config(tmp_path, server.base_url, "  - {name: w, kind: prompt_rubrics, provider: writer}\n")
    out = tmp_path / "run"
    args = ("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out), "--no-progress",
            "--bootstrap", "0")
    for extra in (("--limit", "1"), ()):  # the second pair comes after the first one's rubric is cached
        result = cli(*args, *extra)
        assert result.returncode == 0, result.stderr
    assert len([r for r in server.seen if "Write an evaluation rubric" in r.text]) == 2
    for request in (r for r in server.seen if "Evaluation Rubrics" in r.text):
        red_source = request.images()[0].getpixel((0, 0))[0] > 128
        assert f"Keep the {'red' if red_source else 'blue'} source" in request.text


def test_resume_judges_again_a_pair_whose_label_changed(tmp_path, scripted_server):
    # e.g. a rerun with another A/B randomisation seed: same id, images swapped, label flipped;
    # the old record describes another pair and must not be kept
    server = scripted_server(red_is_better)
    config = write_config(tmp_path, server.base_url, "  - {name: d, kind: direct}\n",
                          extra="forward: given\n")
    dataset = make_dataset(tmp_path, n=2)
    out = tmp_path / "run"
    args = ("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(out), "--no-progress",
            "--bootstrap", "0")
    assert cli(*args).returncode == 0
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    rows[0].update(image_a=rows[0]["image_b"], image_b=rows[0]["image_a"], label="B")
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = server.requests
    assert cli(*args).returncode == 0
    assert server.requests - before == 2
    latest = {r["id"]: r for r in records(out, "d")}
    assert latest["p0"]["label"] == "B" and latest["p0"]["forward"]["shown_first"] == "A"
    assert latest["p0"]["forward"]["winner"] == "B"


def test_resume_sets_aside_a_judge_changed_under_the_same_name(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    Rubric(themes=[Theme(theme="Redness wins")]).save(tmp_path / "t2i.json")
    config = write_config(tmp_path, server.base_url, "  - {name: arr, kind: task_rubric, rubric: {t2i: t2i.json}}\n"
                                                     "  - {name: d, kind: direct}\n")
    out = tmp_path / "run"
    args = ("eval", "--dataset", f"jsonl:{make_dataset(tmp_path, n=2)}", "--judge", str(config),
            "--out", str(out), "--no-progress", "--bootstrap", "0")
    assert cli(*args).returncode == 0
    before = server.requests
    assert cli(*args).returncode == 0 and server.requests == before  # unchanged: resumes (nothing left to do)
    old = (out / "verdicts" / "arr.jsonl").read_bytes()
    Rubric(themes=[Theme(theme="Blueness wins")]).save(tmp_path / "t2i.json")
    changed = cli(*args)
    assert changed.returncode == 0, changed.stderr
    message = " ".join(changed.stderr.split())
    assert "judge 'arr' changed since the last run (its rubric text" in message and "set aside" in message
    stale = list((out / "verdicts").glob("arr.stale-*.jsonl"))
    assert len(stale) == 1 and stale[0].read_bytes() == old  # the old answers are kept, never mixed in
    assert server.requests - before == 2 * 2  # only the changed judge was asked again, both orders
    assert len(records(out, "arr")) == 2 and len(records(out, "d")) == 2
    assert "Blueness" in json.loads((out / "run.json").read_text())["rubrics"]["arr"]["t2i"]
    assert "'d'" not in message  # the unchanged judge was resumed


def test_resume_sets_aside_a_judge_whose_prompt_templates_changed(tmp_path, scripted_server):
    from arrpo.judge import judge_prompts_sha256

    server = scripted_server(red_is_better)
    config = write_config(tmp_path, server.base_url, "  - {name: d, kind: direct}\n")
    out = tmp_path / "run"
    args = ("eval", "--dataset", f"jsonl:{make_dataset(tmp_path, n=2)}", "--judge", str(config),
            "--out", str(out), "--no-progress", "--bootstrap", "0")
    assert cli(*args).returncode == 0
    info = json.loads((out / "run.json").read_text())
    assert info["judges"][0]["prompts_sha256"] == judge_prompts_sha256()  # judge.j2, judge_retry.j2, ocr_evidence.j2
    # the run was started by an arrpo whose judge templates said something else
    info["judges"][0]["prompts_sha256"] = "0" * 64
    (out / "run.json").write_text(json.dumps(info))
    before = server.requests
    changed = cli(*args)
    assert changed.returncode == 0, changed.stderr
    assert "judge 'd' changed" in changed.stderr
    assert "the judge prompt templates (judge.j2, judge_retry.j2, ocr_evidence.j2)" in changed.stderr
    assert server.requests - before == 2 * 2 and len(records(out, "d")) == 2
    assert len(list((out / "verdicts").glob("d.stale-*.jsonl"))) == 1
    # a spec field added since the run was recorded counts at its default: nothing changed
    info = json.loads((out / "run.json").read_text())
    del info["judges"][0]["max_answer_chars"]
    (out / "run.json").write_text(json.dumps(info))
    before = server.requests
    assert cli(*args).returncode == 0 and server.requests == before


def test_max_answer_chars_of_a_judge_configuration_bounds_its_records(tmp_path, scripted_server):
    long_reason = "red " * 1000

    def handler(request):
        first = request.images()[-2].getpixel((0, 0))
        return Reply(text=json.dumps({"rank": [1, 2] if first[0] > 128 else [2, 1], "reason": long_reason}))

    server = scripted_server(handler)
    config = write_config(tmp_path, server.base_url, "  - {name: capped, kind: direct, max_answer_chars: 100}\n"
                                                     "  - {name: whole, kind: direct, max_answer_chars: null}\n")
    out = tmp_path / "run"
    result = cli("eval", "--dataset", f"jsonl:{make_dataset(tmp_path, n=2)}", "--judge", str(config),
                 "--out", str(out), "--bootstrap", "0", "--no-progress")
    assert result.returncode == 0, result.stderr
    for record in records(out, "capped"):
        side = record["forward"]
        assert side["correct"] and len(side["reason"]) < 160 and "characters cut" in side["reason"]
        assert len(side["raw"]) < 160
    assert all(r["forward"]["reason"] == long_reason for r in records(out, "whole"))
    bad = write_config(tmp_path, server.base_url, "  - {name: d, kind: direct, max_answer_chars: 0}\n")
    with pytest.raises(ConfigError, match="max_answer_chars"):
        load_config(bad)


def test_dataset_text_in_the_printed_summary_is_not_markup(tmp_path, scripted_server):
    server = scripted_server(red_is_better)
    dataset = make_dataset(tmp_path, n=2)
    dataset.write_text(dataset.read_text().replace('"subset": "even"', '"subset": "[/bold] even [red]x"'))
    config = write_config(tmp_path, server.base_url, "  - {name: d, kind: direct}\n")
    result = cli("eval", "--dataset", f"jsonl:{dataset}", "--judge", str(config), "--out", str(tmp_path / "run"),
                 "--bootstrap", "0", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "[/bold] even [red]x" in result.stderr and "MarkupError" not in result.stderr


async def test_prompt_rubric_files_are_found_by_the_one_key_and_kept_in_the_run(tmp_path):
    from arrpo.datasets.pairs import ImageRef, PreferencePair
    from arrpo.eval.providers import RubricUnavailable, build_source
    from arrpo.rubrics.write import prompt_rubric_key

    write_png(tmp_path / "src.png", RED)
    folder = tmp_path / "rubrics"
    source = ImageRef(path=str(tmp_path / "src.png"))
    key = prompt_rubric_key("files", "edit", "make it night", source.load())
    Rubric(themes=[Theme(theme="Night sky")], scope="prompt").save(folder / f"{key}.json")
    config_path = tmp_path / "judges.yaml"
    config_path.write_text("judges:\n  - {name: f, kind: prompt_rubrics, provider: files, rubrics_dir: rubrics}\n")
    rubrics = build_source(load_config(config_path).judges[0], load_config(config_path), None, tmp_path / "run")
    pair = PreferencePair(id="e/1", task="edit", prompt="make it night", image_a=source, image_b=source,
                          source=source, label="A")
    rubric, kept_as = await rubrics.rubric_for(pair)
    assert rubric.themes[0].theme == "Night sky" and kept_as == key
    assert (tmp_path / "run" / "rubrics" / "f" / f"{key}.json").is_file()  # what the report shows
    with pytest.raises(RubricUnavailable, match=r"no prompt rubric in .* for pair 'e/2' \(looked for e__2.json"):
        await rubrics.rubric_for(pair.model_copy(update={"id": "e/2", "prompt": "make it day"}))
