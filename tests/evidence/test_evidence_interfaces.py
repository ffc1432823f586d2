"""OCR evidence through arrpo's other public interfaces, with the real OCR model: judges.yaml in
``arrpo eval`` (a cached-layout judge, an evidence judge, an evidence-only judge), the RPO config
reaching the training judge, ``arrpo judge``, and the settings refused when they cannot work (the
reward service: ``tests/serve/test_ocr_evidence.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arrpo._sync import run_sync
from arrpo.evidence.ocr import OcrReader
from arrpo.jsonl import iter_records
from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison, Verdict
from arrpo.testing.scripted_server import Reply
from arrpo.testing.text_images import Scene, render_scene, typo

from .conftest import needs_ocr

pytestmark = needs_ocr

SRC = str(Path(__file__).resolve().parents[2] / "src")
FIRST_WINS = '{"rank": [1, 2], "reason": "Image 1 looks better."}'
TEXTS = ("OPEN LATE", "FRESH COFFEE", "BOOK SALE")


def _first_wins(request) -> Reply:
    return Reply(text=FIRST_WINS)


def _pairs(tmp_path: Path) -> Path:
    """A pair file of rendered signs: the requested text against one typo; the label is the right one."""
    rows = []
    for n, text in enumerate(TEXTS):
        scene = Scene(text, size=44, canvas=(420, 200), clutter=3, seed=60 + n)
        right, wrong = render_scene(scene), render_scene(scene.with_text(typo(text, "substitution", seed=n)))
        label = "A" if n % 2 == 0 else "B"
        a, b = (right, wrong) if label == "A" else (wrong, right)
        (tmp_path / f"{n}a.png").write_bytes(a.data)
        (tmp_path / f"{n}b.png").write_bytes(b.data)
        rows.append({"id": f"sign{n}", "prompt": f'a shop sign that says "{text}"', "image_a": f"{n}a.png",
                     "image_b": f"{n}b.png", "label": label})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_judges_yaml_with_a_cached_an_evidence_and_an_evidence_only_judge(tmp_path, scripted_server):
    server = scripted_server(_first_wins)
    config = tmp_path / "judges.yaml"
    config.write_text(
        f"backend: {{endpoint: '{server.base_url}', model: m, cache: false, max_retries: 0}}\n"
        "judges:\n"
        "  - {name: cached, kind: direct, prompt_layout: cached}\n"
        "  - {name: with-ocr, kind: direct, evidence: [ocr], ocr_policy: override}\n"
        "  - {name: ocr-only, kind: direct, evidence: [ocr], evidence_only: true}\n"
    )
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "arrpo", "eval", "--dataset", f"jsonl:{_pairs(tmp_path)}", "--judge", str(config),
         "--out", str(out), "--no-progress", "--bootstrap", "0"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert len(server.seen) == 2 * len(TEXTS) * 2  # two judges ask the model, in both orders; ocr-only none
    with_block = [r for r in server.seen if "OCR evidence (" in r.text]
    assert len(with_block) == len(TEXTS) * 2 and all(r.body["messages"][0]["role"] == "user" for r in with_block)
    assert sum(r.body["messages"][0]["role"] == "system" for r in server.seen) == len(TEXTS) * 2
    records = {name: list(iter_records(out / "verdicts" / f"{name}.jsonl")) for name in ("cached", "with-ocr", "ocr-only")}
    for name in ("with-ocr", "ocr-only"):  # decisive evidence gives the right answer in both orders
        assert all(r[side]["correct"] for r in records[name] for side in ("forward", "reverse")), records[name]
    assert all(r[side]["calls"] == 0 for r in records["ocr-only"] for side in ("forward", "reverse"))
    cached_correct = [r[side]["correct"] for r in records["cached"] for side in ("forward", "reverse")]
    assert cached_correct.count(True) == len(TEXTS)  # the position-biased model: right only when shown first
    judges = {j["name"]: j for j in json.loads((out / "run.json").read_text())["judges"]}
    assert (judges["ocr-only"]["evidence"], judges["ocr-only"]["evidence_only"]) == (["ocr"], True)
    assert judges["with-ocr"]["ocr_policy"] == "override" and judges["cached"]["prompt_layout"] == "cached"


@pytest.mark.parametrize(("judge", "message"), [
    ({"evidence_only": True}, "judges.0: evidence_only needs evidence to decide from: add evidence: [ocr]"),
    ({"ocr_policy": "override"}, "judges.0: ocr_policy override needs OCR evidence: add evidence: [ocr]"),
    ({"evidence": ["pdf"]}, "judges.0.evidence.0: Input should be 'ocr'"),
    ({"evidence": "ocr"}, "judges.0.evidence: Input should be a valid tuple"),
])
def test_evidence_settings_that_cannot_work_are_refused_in_one_line(tmp_path, judge, message):
    from arrpo.eval.config import ConfigError, load_config

    path = tmp_path / "judges.yaml"
    path.write_text(json.dumps({"judges": [{"name": "a", "kind": "direct", **judge}]}))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value).endswith(message)


def test_the_rpo_config_reaches_the_training_judge(scripted_server):
    from arrpo.rl.config import build_config
    from arrpo.rl.judging import build_judge

    server = scripted_server(_first_wins)
    cfg = build_config({"judge": {"backend": {"endpoint": server.base_url, "model": "m", "cache": False},
                                  "order": "given", "prompt_layout": "cached", "evidence": ["ocr"],
                                  "ocr_policy": "override"}})
    judge = build_judge(cfg.judge)
    assert isinstance(judge, PairwiseJudge) and judge.ocr_reader is not None
    assert (judge.settings.prompt_layout, judge.settings.evidence, judge.settings.ocr_policy) == ("cached", ("ocr",),
                                                                                                   "override")
    scene = Scene("OPEN LATE", size=44, canvas=(400, 200), seed=71)
    verdict = judge.judge_sync(Comparison(prompt='a sign "OPEN LATE"', image_a=render_scene(scene.with_text("OPEN LAET")),
                                          image_b=render_scene(scene)))
    assert verdict.winner == "B" and verdict.evidence.decided_by == "evidence"
    assert server.seen[0].body["messages"][0]["role"] == "system"
    with pytest.raises(Exception, match="evidence_only needs evidence"):
        build_config({"judge": {"evidence_only": True}})


def test_arrpo_judge_decides_a_pair_from_ocr_alone_without_a_model(tmp_path):
    from typer.testing import CliRunner

    from arrpo.cli import app

    scene = Scene("FRESH COFFEE", size=44, canvas=(420, 200), seed=72)
    (tmp_path / "a.png").write_bytes(render_scene(scene.with_text("FRESH COFEE")).data)
    (tmp_path / "b.png").write_bytes(render_scene(scene).data)
    args = ["judge", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-p", 'a cafe sign "FRESH COFFEE"']
    result = CliRunner().invoke(app, [*args, "--evidence", "ocr", "--evidence-only", "--json"],
                                env={"ARRPO_ENDPOINT": "", "ARRPO_MODEL": ""})  # no model anywhere
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["winner"] == "B" and verdict["evidence"]["decided_by"] == "evidence" and verdict["answers"] == []
    shown = CliRunner().invoke(app, [*args, "--evidence", "ocr", "--evidence-only"],
                               env={"ARRPO_ENDPOINT": "", "ARRPO_MODEL": ""})
    assert shown.exit_code == 0, shown.output
    assert '[A] OCR: "FRESH COFEE" · match 0.91' in shown.output and "[B] OCR: \"FRESH COFFEE\" · match 1.00" in shown.output
    assert "evidence: B matches the requested text decisively better" in shown.output
    refused = CliRunner().invoke(app, [*args, "--evidence-only"])
    assert refused.exit_code == 2 and "evidence_only needs evidence" in refused.output


def _cli_judge(args: list[str], env: dict[str, str] | None = None):
    from typer.testing import CliRunner

    from arrpo.cli import app

    return CliRunner().invoke(app, ["judge", *args], env=env)


def test_arrpo_judge_shows_the_block_in_both_orders_and_survives_the_bad_inputs(tmp_path, scripted_server, reader,
                                                                                 monkeypatch):
    import arrpo.evidence.ocr

    monkeypatch.setattr(arrpo.evidence.ocr, "_shared", reader)  # the session's reads are reused
    scene = Scene("OPEN LATE", size=44, canvas=(420, 200), clutter=3, seed=60)
    (tmp_path / "a.png").write_bytes(render_scene(scene.with_text(typo(scene.text, "substitution", seed=0))).data)
    (tmp_path / "b.png").write_bytes(render_scene(scene).data)
    server = scripted_server(_first_wins)
    common = [str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--order", "both", "--evidence", "ocr", "--json",
              "--endpoint", server.base_url, "--model", "m", "--no-cache"]
    result = _cli_judge([*common, "-p", 'a shop sign that says "OPEN LATE"', "--ocr-policy", "tiebreak"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    blocks = {r.body["messages"][0]["content"][-1]["text"].split("OCR evidence (")[1].split("\n\nRequirements")[0]
              for r in server.seen}
    assert len(server.seen) == 2 and len(blocks) == 2  # both orders carry a block, not the same one
    firsts = sorted(b.split("Image 1 text read: ")[1].split(" |")[0] for b in blocks)
    assert firsts == ['"OMEN LATE"', '"OPEN LATE"']  # the labels are swapped between the orders
    first, second = (b.splitlines() for b in blocks)
    assert first[2].replace("Image 1", "Image 2") == second[3] and second[2].replace("Image 1", "Image 2") == first[3]
    assert first[:2] + first[4:] == second[:2] + second[4:]  # worded the same otherwise
    assert verdict["orders_agree"] is False and verdict["winner"] == "B"  # biased orders disagree; tiebreak settles
    assert verdict["evidence"]["policy"]["decided_by"] == "evidence"
    server.seen.clear()
    no_text = _cli_judge([*common, "-p", "a diner at night"])  # asks for no text: no OCR run, no block
    assert no_text.exit_code == 0, no_text.output
    assert json.loads(no_text.output)["evidence"]["ocr"] is None
    assert not any("OCR evidence (" in r.text for r in server.seen)

    def broken():
        def engine(array):
            raise RuntimeError("the model file is damaged")

        return engine

    monkeypatch.setattr(arrpo.evidence.ocr, "_shared", OcrReader(engine_factory=broken, cache_size=0))
    failed = _cli_judge([*common, "-p", 'a shop sign that says "OPEN LATE"'])
    assert failed.exit_code == 0, failed.output  # the model's verdict, the evidence marked unavailable
    assert json.loads(failed.output)["evidence"]["unavailable"].startswith("OCR evidence unavailable: image A")


def test_the_rpo_evidence_only_judge_needs_no_endpoint(monkeypatch, reader):
    import arrpo.evidence.ocr
    from arrpo.rl.config import build_config
    from arrpo.rl.judging import build_judge
    from arrpo.vlm.base import NoModel

    monkeypatch.setattr(arrpo.evidence.ocr, "_shared", reader)
    monkeypatch.delenv("ARRPO_ENDPOINT", raising=False)
    monkeypatch.delenv("ARRPO_MODEL", raising=False)
    cfg = build_config({"judge": {"order": "both", "evidence": ["ocr"], "evidence_only": True}})
    judge = build_judge(cfg.judge)
    assert isinstance(judge, PairwiseJudge) and isinstance(judge.backend, NoModel)
    scene = Scene("OPEN LATE", size=44, canvas=(420, 200), clutter=3, seed=60)
    verdict = judge.judge_sync(Comparison(prompt='a sign "OPEN LATE"', image_a=render_scene(scene),
                                          image_b=render_scene(scene.with_text("OMEN LATE"))))
    assert verdict.winner == "A" and verdict.evidence.decided_by == "evidence"
    with pytest.raises(Exception, match="evidence_only asks no model, so it cannot write prompt rubrics"):
        build_config({"judge": {"evidence": ["ocr"], "evidence_only": True, "prompt_rubrics": True}})


def test_a_judge_built_without_a_backend_says_so_when_it_must_ask_a_model():
    from arrpo.vlm.base import BackendUnavailable

    scene = Scene("OPEN LATE", size=44, canvas=(420, 200), seed=60)
    comparison = Comparison(prompt="a sign", image_a=render_scene(scene), image_b=render_scene(scene.with_text("X")))
    with pytest.raises(BackendUnavailable, match="only an evidence_only judge runs without one"):
        PairwiseJudge(None).judge_sync(comparison)  # type: ignore[arg-type]


def test_a_ray_worker_runs_the_evidence_only_judge_without_an_endpoint(monkeypatch, reader):
    import arrpo.evidence.ocr
    from arrpo.judge_settings import JudgeSettings
    from arrpo.scale.ray_runner import JudgeWorker, pack_chunk
    from arrpo.vlm.settings import BackendSettings

    monkeypatch.setattr(arrpo.evidence.ocr, "_shared", reader)
    monkeypatch.delenv("ARRPO_ENDPOINT", raising=False)
    settings = JudgeSettings(order="given", evidence=("ocr",), evidence_only=True)
    worker = JudgeWorker(BackendSettings(kind="openai"), settings.model_dump_json())
    scene = Scene("OPEN LATE", size=44, canvas=(420, 200), clutter=3, seed=60)
    comparison = Comparison(id="p", prompt='a sign "OPEN LATE"', image_a=render_scene(scene.with_text("OMEN LATE")),
                            image_b=render_scene(scene))
    [(index, verdict_json, _retries)] = run_sync(worker.judge_chunk(pack_chunk([(0, comparison)])))
    assert index == 0 and Verdict.model_validate_json(verdict_json).winner == "B"


def test_an_evidence_only_eval_judge_cannot_write_prompt_rubrics(tmp_path):
    from arrpo.eval.config import ConfigError, load_config

    path = tmp_path / "judges.yaml"
    path.write_text("judges:\n  - {name: o, kind: prompt_rubrics, evidence: [ocr], evidence_only: true}\n")
    with pytest.raises(ConfigError, match="it asks no model, so it cannot write prompt rubrics"):
        load_config(path)
