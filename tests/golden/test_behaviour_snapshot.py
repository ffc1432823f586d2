"""Behaviour snapshot: ``arrpo judge --pairs``, ``eval``, ``rubric learn`` and ``train`` (tiny) on
``../shared/data`` against a frozen scripted VLM write exactly what they wrote when the snapshot
was taken (``snapshots/*.json``), timings and temporary paths aside.

It guards refactors that must not change behaviour (issue 19). When a command-line flag or a config
key is renamed, change only the tables below (``COMMANDS``, ``JUDGES_YAML``, ``TRAIN_CONFIG``),
never the snapshots. A new key in a written record fails the test until it is listed, with its
reason, in ``ALLOWED_NEW_KEYS``. A deliberate behaviour change is the only reason to regenerate
(``python tests/golden/regenerate.py``, see its docstring), stated in the commit message.

What is masked and what is compared with a tolerance: see ``tests/golden/snapshot.py``.
"""

from __future__ import annotations

import pytest

# ----------------------------------------------------------------------------- the command table
#: Options every command that talks to the VLM gets ({endpoint}: the scripted server of the run).
VLM_OPTIONS = "--endpoint {endpoint} --model golden-vlm --no-cache"

#: One row per scenario: the arrpo command line ({vlm} = VLM_OPTIONS; {out} = the scenario's empty
#: output folder; {config} = the scenario's config file below; other names: see scenarios.Inputs).
COMMANDS: dict[str, str] = {
    "judge_both": "judge --pairs {pairs} --images {data} --out {out}/verdicts.jsonl --order both {vlm}",
    "judge_random_rubric": "judge --pairs {pairs} --images {data} --out {out}/verdicts.jsonl --order random "
                           "--rubric {rubric} {vlm}",
    "judge_both_first_rubric": "judge --pairs {pairs} --images {data} --out {out}/verdicts.jsonl --order both "
                               "--on-disagree first --rubric {rubric} {vlm}",
    "eval": "eval --dataset mjbench:{mjbench} --sample 16 --judge {config} --out {out}/run --bootstrap 200 "
            "--no-progress {vlm}",
    "rubric_learn": "rubric learn --pairs {seeds} --format mjbench --task t2i --limit 12 --holdout 4 --k 3 "
                    "--t-max 2 --bootstrap 200 --out {out}/rubric.json {vlm}",
    "train": "train --config {config} --out {out}/run",
}

#: The judges file of the "eval" row ({rubric}: tests/golden/inputs/t2i-rubric.json).
JUDGES_YAML = """\
backend:
  max_concurrency: 8
judges:
  - name: direct
    kind: direct
  - name: arr
    kind: task_rubric
    rubric: {rubric}
  - name: arr-prompt
    kind: prompt_rubrics
    provider: writer
"""

#: The training config of the "train" row: the tiny CPU preset, two iterations, judged by the VLM.
TRAIN_CONFIG = """\
preset: tiny-cpu
model:
  pretrained: {tiny}
data:
  prompts: {prompts}
judge:
  builtin: null
  backend:
    endpoint: {endpoint}
    model: golden-vlm
    cache: false
  order: both
  rubric: {rubric}
train:
  iterations: 2
  prompts_per_iteration: 2
  seed: 7
  checkpoint_every: 1
  keep_checkpoints: 3
  gallery_every: 1
optim:
  accumulate_samples: 4
"""

#: Keys that may appear in a written record although the snapshot lacks them: key → why it was
#: added deliberately. Everything else new is a difference.
ALLOWED_NEW_KEYS: dict[str, str] = {
    # issue 19: rubric validate's judges.yaml records every ask setting of the one AskSettings model
    # (it listed three of them by hand before); the values are the defaults the judges used anyway
    "allow_ties": "judges.yaml written by rubric validate lists all ask settings (issue 19)",
    "max_answer_chars": "judges.yaml written by rubric validate lists all ask settings (issue 19)",
    # issue 19: the RPO config's judge section is the one JudgeSettings, so training can now set
    # these (it could not before); the checkpoint's config.json records their default values
    "parse_retries": "the RPO judge section is JudgeSettings (issue 19)",
    "temperature": "the RPO judge section is JudgeSettings (issue 19)",
    "max_tokens": "the RPO judge section is JudgeSettings (issue 19)",
    "seed": "the RPO judge section is JudgeSettings: its random-order seed (issue 19)",
    # issue 21: group_rewards takes the group's pairing (tournament added) and reports each sample's
    # standing (the all-pairs win rate for all_pairs / random_pairs, as before)
    "pairing": "group_rewards(pairing=) for the tournament pairing (issue 21)",
    "standings": "GroupRewards.standings: the value the preset maps (issue 21)",
    # issue 19: one rule for 'settings changed since the last run': judge --pairs records its
    # settings beside the verdict file (before, a rerun with another --order mixed verdicts)
    "verdicts.jsonl.settings.json": "judge --pairs records its settings beside the verdicts (issue 19)",
    # issues 21/22: new judge settings (every record of the settings lists them, at their defaults:
    # judges ask exactly as before) and the two new verdict fields (the layout asked in; the evidence)
    "prompt_layout": "the judge's prompt layout (issue 21): a setting, and recorded in each verdict",
    "evidence": "the judge's tool evidence (issue 22): a setting ([]) and a verdict field (null: none used)",
    "evidence_only": "the OCR-only judge switch (issue 22), a judge setting",
    "ocr_policy": "what decisive OCR evidence does (issue 22), a judge setting",
    "policy": "each order answer's ocr_policy outcome (issue 22; null: the judge uses no OCR evidence)",
}

#: Scenario name → (config file name, template) written before the run as {config}.
CONFIGS = {"eval": ("judges.yaml", JUDGES_YAML), "train": ("config.yaml", TRAIN_CONFIG)}


# ----------------------------------------------------------------------------- the tests
def scenarios():
    """The scenarios of the table, with what each compares (imported lazily: torch for train)."""
    import arrpo.rewards

    from . import scenarios as sc

    collect = {"eval": sc.collect_tree(sc._eval_tokens), "rubric_learn": sc.collect_tree(sc._learn_tokens),
               "train": sc.collect_train}
    return {
        name: sc.Scenario(
            name, COMMANDS[name], collect.get(name, sc.collect_tree()), config=CONFIGS.get(name),
            image_hashes=name != "train",  # generated images: their bytes carry float noise
            spy=(arrpo.rewards, "group_rewards") if name == "train" else None,  # the rewards trained on
        )
        for name in COMMANDS
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    from .scenarios import build_inputs

    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return build_inputs(tmp_path_factory.mktemp("golden"), SHARED_DATA)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_behaviour_matches_snapshot(name, inputs):
    from .snapshot import load_snapshot

    if name == "train":
        pytest.importorskip("torch")
        pytest.importorskip("diffusers")
    scenario = scenarios()[name]
    expected = load_snapshot(name)
    actual = run(scenario, inputs)
    check(name, expected, actual)


def run(scenario, inputs) -> dict:
    """Run one scenario; training with one torch thread (bit-stable, and fast on a shared 2-core
    machine, as the rl tests), leaving the process's threads and logging as they were."""
    from .scenarios import run_scenario

    if scenario.name != "train":
        return run_scenario(scenario, inputs, VLM_OPTIONS)
    import logging

    import torch

    threads, root = torch.get_num_threads(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    torch.set_num_threads(1)
    try:
        return run_scenario(scenario, inputs, VLM_OPTIONS)
    finally:
        torch.set_num_threads(threads)
        root.handlers[:] = handlers  # `arrpo train` calls logging.basicConfig on the captured stderr
        root.setLevel(level)


def check(name: str, expected: dict, actual: dict) -> None:
    """Fail with a readable list of differences (train: numbers only when the libraries match)."""
    from .snapshot import Diff, compare

    expected = {k: v for k, v in expected.items() if not k.startswith("_")}
    output = actual.pop("_output_tail", "")
    diff = Diff()
    skip_reason = None
    if name == "train" and expected.get("environment") != actual.get("environment"):
        was, now = expected.get("environment") or {}, actual.get("environment") or {}
        changed = ", ".join(f"{k} {was.get(k)} → {now.get(k)}" for k in sorted({*was, *now}) if was.get(k) != now.get(k))
        skip_reason = (f"library versions differ from the snapshot's ({changed}): training numbers, verdicts "
                       "and rewards not compared, only files, metric keys and the exit code")
        expected, actual = _shape(expected), _shape(actual)
    tolerant = _train_tolerant if name == "train" else (lambda where: False)
    compare(expected, actual, name, diff, allowed_new=ALLOWED_NEW_KEYS, tolerant=tolerant)
    if diff:
        pytest.fail(f"{name}: behaviour differs from tests/golden/snapshots/{name}.json: {diff.report()}"
                    f"\n--- command output (end) ---\n{output}", pytrace=False)
    if skip_reason:
        pytest.skip(skip_reason)


def _train_tolerant(where: str) -> bool:
    from .snapshot import TRAIN_TOLERANT

    if ".lora[" in where and where.endswith((".sum", ".sum_sq")):
        return True
    return any(where.endswith(f".{key}") for key in TRAIN_TOLERANT)


def _shape(snapshot: dict) -> dict:
    """What of a training snapshot does not depend on library versions: file names, the keys of
    every metrics record, the exit code."""
    contents = snapshot.get("contents", {})
    return {
        "exit_code": snapshot.get("exit_code"),
        "files": snapshot.get("files"),
        "metric_keys": [sorted(r) for r in contents.get("metrics.jsonl", [])],
    }
