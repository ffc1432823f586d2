"""Measure a rubric on labelled pairs against the direct judge and a zero-shot rubric.

Everything goes through the evaluation pipeline of :mod:`arrpo.eval` (:func:`~arrpo.eval.runner.evaluate`:
its runner, resumable verdict files, response cache, metrics and report); the pairs and the judge
configurations are passed to it in memory. The run directory also keeps, as a record, what
``arrpo eval`` needs to redo the same measurement::

    heldout.jsonl        the pairs, as a generic JSONL dataset (absolute image paths)
    judges.yaml          the judge configurations (direct, zero-shot, the rubric)
    rubric.json          a copy of the rubric measured
    zero-shot-<task>.json  the zero-shot task rubric, written once and reused
    validation.json      model and rubric texts of the verdicts on disk
    run.json, pairs.jsonl, verdicts/, metrics.json, summary.md, report.html   (the eval run)

so ``arrpo eval --dataset jsonl:DIR/heldout.jsonl --judge DIR/judges.yaml --out OTHER`` with the
same model gives the same table. A rerun resumes; a judge whose settings or model changed has its
old verdicts set aside (the changed-settings rule of :mod:`arrpo.jobs`).

:func:`learn_and_validate` is ``arrpo rubric learn --holdout`` as a library function: learn a rubric,
save it, measure it on held-out pairs and record the result in its provenance.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from arrpo.datasets import missing_images_error, unusable_images
from arrpo.datasets.pairs import ImageRef
from arrpo.datasets.seeds import PreferencePair, SeedSet
from arrpo.errors import ArrpoError
from arrpo.eval.config import ConfigError, EvalConfig
from arrpo.eval.rundir import EvalRecord, RunDir
from arrpo.eval.runner import build_setups, evaluate
from arrpo.jobs import set_aside_if_changed
from arrpo.jsonl import JsonlWriter
from arrpo.judge import judge_prompts_sha256
from arrpo.judge_settings import AskSettings
from arrpo.rubric import Rubric
from arrpo.rubrics.ask import model_name
from arrpo.rubrics.learn import LearnResult, PairOutcome, RubricLearner
from arrpo.rubrics.write import RubricWriteError, RubricWriter
from arrpo.schema import Task
from arrpo.text import exception_text
from arrpo.vlm.base import BackendError, VLMBackend

#: Judges a rubric can be compared against, in the order they are reported.
BASELINES = ("direct", "zero-shot")
RUBRIC_JUDGE = "learned"
#: Statistics copied into provenance (fractions), with their bootstrap intervals where computed.
REPORTED = ("forward", "reverse", "mean", "delta", "consistency", "tie_rate", "invalid_rate")


class RubricValidationError(ArrpoError, ValueError, kind="bad_input"):
    """The comparison cannot be run (bad --against, mixed tasks, no pairs)."""


@dataclass
class ValidationResult:
    """The metrics of every judge on the pairs, and where the run lies."""

    run_dir: Path
    pairs: int
    pairs_sha256: str
    model: str
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)

    def provenance(self, **extra: Any) -> dict[str, Any]:
        """What a rubric file records about the measurement (JSON-able)."""
        return {
            "pairs": self.pairs, "pairs_sha256": self.pairs_sha256, "model": self.model,
            "run_dir": str(self.run_dir), "judges": self.judges,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra,
        }


def parse_against(text: str) -> list[str]:
    """``"zero-shot,direct"`` → the baselines, in report order; raises :class:`RubricValidationError`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise RubricValidationError(f"--against takes {', '.join(BASELINES)} (got {', '.join(unknown)})")
    return [name for name in BASELINES if name in names]


def _image_path(ref: Any, images: Path) -> str:
    """An absolute path for an image reference; embedded bytes (Hub datasets) are written once into
    ``images``, named by their hash, so the generic JSONL dataset can point at them."""
    data = getattr(ref, "data", None)
    if data is not None:
        digest = hashlib.sha256(data).hexdigest()
        target = images / digest
        if not target.exists():
            images.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return str(target.resolve())
    return str(Path(getattr(ref, "path", None) or ref).resolve())


def pair_row(pair: PreferencePair, images: Path) -> dict[str, Any]:
    """A seed pair as a row of the generic JSONL dataset (``arrpo eval --dataset jsonl:FILE``)."""
    row: dict[str, Any] = {
        "id": pair.id, "task": pair.task, "prompt": pair.prompt,
        "image_a": _image_path(pair.image_a, images), "image_b": _image_path(pair.image_b, images),
        "label": pair.preferred, "subset": str(getattr(pair, "subset", None) or "all"),
    }
    if pair.source is not None:
        row["source"] = _image_path(pair.source, images)
    return row


def eval_pair(row: Mapping[str, Any]) -> PreferencePair:
    """A :func:`pair_row` as the eval runner gets it: the pair ``arrpo eval --dataset jsonl:FILE``
    reads back from that row (paths only, the label as the preferred side)."""
    return PreferencePair(
        id=row["id"], task=row["task"], prompt=row["prompt"], label=row["label"], subset=row["subset"],
        image_a=ImageRef(path=row["image_a"]), image_b=ImageRef(path=row["image_b"]),
        source=ImageRef(path=row["source"]) if row.get("source") else None,
    )


def write_pairs(pairs: Sequence[PreferencePair], path: Path) -> tuple[list[PreferencePair], str]:
    """Write the pairs as generic JSONL (the record ``arrpo eval`` can rerun); returns them as the
    eval runner judges them (:func:`eval_pair`) and their :func:`pairs_digest`."""
    images = path.parent / "images"
    rows = [pair_row(p, images) for p in pairs]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return [eval_pair(row) for row in rows], pairs_digest(rows)


_IMAGE_FIELDS = ("image_a", "image_b", "source")


def pairs_digest(rows: Sequence[Mapping[str, Any]]) -> str:
    """The sha256 of held-out rows by content: each image as the sha256 of its bytes, not its
    path, so the same pairs give the same digest on any machine and in any folder (a file that
    cannot be read keeps its path)."""
    def content(value: str) -> str:
        try:
            return "sha256:" + hashlib.sha256(Path(value).read_bytes()).hexdigest()
        except OSError:
            return value

    canonical = [{k: content(v) if k in _IMAGE_FIELDS and isinstance(v, str) else v for k, v in row.items()}
                 for row in rows]
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def zero_shot_rubric(backend: VLMBackend, task: Task, folder: Path, *, max_themes: int = 10,
                           max_tips: int = 4) -> Path:
    """The zero-shot task rubric of this model, written once into ``folder`` and reused after."""
    path = folder / f"zero-shot-{task}.json"
    if path.exists():
        try:
            cached = Rubric.load(path)
            if cached.provenance.generator_model == model_name(backend) and cached.task == task:
                return path
        except ValueError:
            pass  # a damaged file is written again
    rubric = await RubricWriter(backend, max_themes=max_themes, max_tips=max_tips).write_task(task)
    rubric.save(path)
    return path


def _judge_specs(against: Sequence[str], task: Task, settings: AskSettings) -> list[dict[str, Any]]:
    common = settings.model_dump(mode="json")
    specs = []
    for name in against:
        if name == "direct":
            specs.append({"name": "direct", "kind": "direct", **common})
        else:
            specs.append({"name": "zero-shot", "kind": "task_rubric", "rubric": {task: f"zero-shot-{task}.json"},
                          **common})
    specs.append({"name": RUBRIC_JUDGE, "kind": "task_rubric", "rubric": {task: "rubric.json"}, **common})
    return specs


def _set_aside_other_model(run: RunDir, current: dict[str, Any]) -> list[str]:
    """The changed-settings rule for what ``run.json`` does not record: the model. Verdicts made by
    another model are set aside (the eval runner checks the rest: spec, prompts, rubric text);
    ``validation.json`` is rewritten with ``current``. Returns the notes to show."""
    try:
        before = json.loads((run.root / "validation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    notes = []
    for name in current["judges"]:
        recorded = {"model": before.get("model")} if name in before.get("judges", {}) else None
        aside = set_aside_if_changed(run.verdicts(name), recorded, {"model": current["model"]})
        if aside is not None:
            notes.append(aside.message(f"judge {name!r}"))
    (run.root / "validation.json").write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
    return notes


def check_run_dir(run_dir: Path) -> None:
    """Refuse a ``run_dir`` that is a file, or a folder with other content than a validation run
    (its files would be mixed with the run's, and a rerun would treat them as its own)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RubricValidationError(f"{run_dir} is a file; the validation writes a folder (give another --out)")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (
        (run_dir / "validation.json").exists() or (run_dir / "heldout.jsonl").exists()
    ):
        raise RubricValidationError(f"{run_dir} is a folder with other content, not a validation run; "
                              "give a new or empty --out")


async def validate_rubric(
    rubric: Rubric,
    pairs: Sequence[PreferencePair],
    backend: VLMBackend,
    run_dir: str | Path,
    *,
    against: Sequence[str] = BASELINES,
    settings: AskSettings | None = None,
    max_pixels: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    max_pending: int = 16,
    on_record: Callable[[str, EvalRecord], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ValidationResult:
    """Judge ``pairs`` with ``rubric`` and the ``against`` baselines, each in both orders, through
    :func:`arrpo.eval.runner.evaluate`, and return the metrics of :mod:`arrpo.eval.metrics`.

    A rerun resumes: pairs already judged by an unchanged judge are not asked again.
    """
    if not pairs:
        raise RubricValidationError("no pairs to validate on")
    tasks = {p.task for p in pairs}
    if len(tasks) != 1:
        raise RubricValidationError(f"the pairs mix tasks {sorted(tasks)}; validate one task at a time")
    task: Task = next(iter(tasks))  # type: ignore[assignment]
    if rubric.task not in (None, task):
        raise RubricValidationError(f"the rubric is for {rubric.task!r} but the pairs are {task!r} pairs")
    settings = settings or AskSettings()
    run = RunDir(run_dir)
    check_run_dir(run.root)
    run.root.mkdir(parents=True, exist_ok=True)
    dataset = run.root / "heldout.jsonl"
    held, pairs_sha = write_pairs(pairs, dataset)
    problems = unusable_images(held)
    if problems:  # as arrpo eval would stop on the same file
        raise missing_images_error(f"jsonl:{dataset}", problems, len(held))
    rubric.save(run.root / "rubric.json")
    if "zero-shot" in against:
        await zero_shot_rubric(backend, task, run.root)
    # max_pixels is a setting of this measurement, not of the judges: kept out of judges.yaml, as before
    config = _record_judges(run, _judge_specs(against, task, settings)).model_copy(update={"max_pixels": max_pixels})
    setups = build_setups(config, run, {spec.name: backend for spec in config.judges})
    current = {
        "model": model_name(backend),
        "judges": {s.name: {"spec": s.spec.model_dump(mode="json"), "prompts_sha256": judge_prompts_sha256(),
                            "rubrics": {t: r.render() for t, r in s.rubrics.by_task.items()}} for s in setups},
    }
    for note in _set_aside_other_model(run, current):
        if on_note:
            on_note(note)
    result = await evaluate(
        config, held, run, backends={spec.name: backend for spec in config.judges},
        info={"dataset": f"jsonl:{dataset}", "images": None, "options": []}, max_pending=max_pending,
        resamples=resamples, seed=seed, on_record=on_record, on_note=on_note,
    )
    judges = {}
    for name, data in result.metrics["judges"].items():
        overall = data["overall"]
        judges[name] = {
            "judged": data["judged"],
            **{k: overall["values"][k] for k in REPORTED},
            "intervals": overall.get("intervals", {}),
        }
    return ValidationResult(run_dir=run.root, pairs=len(held), pairs_sha256=pairs_sha, model=model_name(backend),
                            judges=judges)


def _record_judges(run: RunDir, specs: list[dict[str, Any]]) -> EvalConfig:
    """The judges of the comparison: written to ``judges.yaml`` (the record ``arrpo eval`` reruns)
    and returned as the configuration the runner gets in memory."""
    dataset, judges = run.root / "heldout.jsonl", run.root / "judges.yaml"
    judges.write_text(
        "# Judges of this validation; rerun with:\n"
        f"#   arrpo eval --dataset jsonl:{dataset} --judge {judges} --out OTHER --endpoint URL --model NAME\n"
        + yaml.safe_dump({"judges": specs}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return EvalConfig.model_validate({"judges": specs, "base_dir": str(run.root.resolve())})


def table_rows(judges: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for printing: name, then each statistic in percent (None when not a number)."""
    rows = []
    for name, values in judges.items():
        row: dict[str, Any] = {"judge": name, "n": values.get("judged")}
        for key in REPORTED:
            value = values.get(key)
            row[key] = None if value is None or value != value else 100 * value
        low_high = values.get("intervals", {}).get("mean")
        row["mean_ci"] = tuple(100 * v for v in low_high) if low_high else None
        rows.append(row)
    return rows


# ------------------------------------------------------------- learning with a held-out measurement
def holdout_dir(rubric_path: str | Path) -> Path:
    """Where the held-out comparison of a learned rubric lives: ``RUBRIC.holdout/`` beside it."""
    rubric_path = Path(rubric_path)
    return rubric_path.with_name(rubric_path.stem + ".holdout")


@dataclass
class LearnedRubric:
    """What :func:`learn_and_validate` did: the learning result (its rubric, with the held-out
    measurement in its provenance when there is one) and the measurement or why it failed."""

    learned: LearnResult
    validation: ValidationResult | None = None
    validation_error: str | None = None

    @property
    def rubric(self) -> Rubric | None:
        return self.learned.rubric


async def learn_and_validate(
    learner: RubricLearner,
    seeds: SeedSet,
    out: str | Path,
    *,
    state_path: str | Path | None = None,
    heldout: Sequence[PreferencePair] = (),
    against: Sequence[str] = BASELINES,
    resamples: int = 1000,
    allow_incomplete: bool = False,
    run_record: Mapping[str, Any] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_outcome: Callable[[PairOutcome], None] | None = None,
    on_error: Callable[[PreferencePair, str], None] | None = None,
    on_learned: Callable[[LearnResult], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    settings: AskSettings | None = None,
) -> LearnedRubric:
    """Learn a rubric from ``seeds`` and save it to ``out``; with ``heldout`` pairs (kept out of
    ``seeds``), measure it on them against ``against`` in :func:`holdout_dir` and save it again
    with the result in its provenance (``holdout``). ``settings``: the held-out judges' ask
    settings (default: the learning config's temperature and max_tokens, the rest default).

    Learning resumes from ``state_path`` (default ``OUT.state.jsonl``); ``run_record`` (what the run
    learns from) is appended to it first. ``on_start(pairs already learned)`` is called once the
    state is read, ``on_learned(result)`` when learning ends, before the held-out comparison asks
    its own questions. A failed comparison keeps the rubric without ``holdout`` and says why in
    ``validation_error`` (the same call resumes it). The caller closes ``learner.backend``.
    """
    out = Path(out)
    state_path = Path(state_path) if state_path is not None else out.with_name(out.name + ".state.jsonl")
    moved, already = learner.open_run(seeds, state_path)
    if moved is not None and on_note is not None:
        on_note(moved.message("the learning settings"))
    if run_record is not None:
        with JsonlWriter(state_path) as writer:  # the state is ours: say what this run learns from
            writer.write(dict(run_record))
    if on_start is not None:
        on_start(len(already))
    result = await learner.learn(seeds, state_path, on_outcome=on_outcome, on_error=on_error, on_note=on_note,
                                 allow_incomplete=allow_incomplete)
    if on_learned is not None:
        on_learned(result)
    learned = LearnedRubric(result)
    if result.rubric is None:
        return learned
    result.rubric.save(out)  # kept even if the held-out comparison fails below
    if not heldout:
        return learned
    cfg = learner.config
    if on_note is not None:
        on_note(f"validating on {len(heldout)} held-out pairs: {', '.join([*against, RUBRIC_JUDGE])}")
    try:
        learned.validation = await validate_rubric(
            result.rubric, heldout, learner.backend, holdout_dir(out), against=against,
            settings=settings or AskSettings(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
            max_pixels=cfg.max_pixels, resamples=resamples, seed=cfg.seed, on_note=on_note,
        )
    except (BackendError, RubricWriteError, ConfigError, ValueError) as exc:  # the rubric stands without it
        learned.validation_error = exception_text(exc)
        return learned
    held = learned.validation.provenance(split_seed=cfg.seed, held_out_ids=[p.id for p in heldout])
    provenance = result.rubric.provenance.model_copy(update={"holdout": held})
    result.rubric = result.rubric.model_copy(update={"provenance": provenance})
    result.rubric.save(out)
    return learned
