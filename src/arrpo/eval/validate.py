"""Measure a rubric on labelled pairs against the direct judge and a zero-shot rubric.

Everything goes through the evaluation pipeline of :mod:`arrpo.eval` (its runner, resumable
verdict files, response cache, metrics and report): this module only prepares an ordinary eval
run directory and reads its metrics back. The directory holds what ``arrpo eval`` needs to redo
the same measurement::

    heldout.jsonl        the pairs, as a generic JSONL dataset (absolute image paths)
    judges.yaml          the judge configurations (direct, zero-shot, the rubric)
    rubric.json          a copy of the rubric measured
    zero-shot-<task>.json  the zero-shot task rubric, written once and reused
    validation.json      model and rubric texts of the verdicts on disk (stale ones are set aside)
    run.json, pairs.jsonl, verdicts/, metrics.json, summary.md, report.html   (the eval run)

so ``arrpo eval --dataset jsonl:DIR/heldout.jsonl --judge DIR/judges.yaml --out OTHER`` with the
same model gives the same table.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from arrpo.datasets.seeds import PreferencePair
from arrpo.errors import ArrpoError
from arrpo.judge_settings import AskSettings
from arrpo.rubric import Rubric
from arrpo.rubrics.ask import model_name
from arrpo.rubrics.write import RubricWriter
from arrpo.schema import Task
from arrpo.vlm.base import VLMBackend

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


def write_pairs(pairs: Sequence[PreferencePair], path: Path) -> str:
    """Write the pairs as generic JSONL; returns the file's sha256."""
    images = path.parent / "images"
    text = "".join(json.dumps(pair_row(p, images), ensure_ascii=False) + "\n" for p in pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
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


def _retire_stale(run_dir: Path, current: dict[str, Any]) -> list[str]:
    """Set aside verdict files made with another model, rubric text or sampling (they would be mixed
    with new answers otherwise); returns the judge names whose verdicts were set aside."""
    state_path = run_dir / "validation.json"
    try:
        before = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    retired = []
    for name, fingerprint in current["judges"].items():
        old = before.get("judges", {}).get(name)
        verdicts = run_dir / "verdicts" / f"{name}.jsonl"
        if verdicts.exists() and (old != fingerprint or before.get("model") != current["model"]):
            verdicts.replace(verdicts.with_name(f"{name}.stale-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"))
            retired.append(name)
    state_path.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return retired


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
    on_record: Callable[[str, dict[str, Any]], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ValidationResult:
    """Judge ``pairs`` with ``rubric`` and the ``against`` baselines, each in both orders, through
    :class:`arrpo.eval.runner.EvalRunner`, and return the metrics of :mod:`arrpo.eval.metrics`.

    A rerun resumes: pairs already judged by an unchanged judge are not asked again.
    """
    from arrpo.datasets import load_pairs
    from arrpo.eval.config import load_config
    from arrpo.eval.report import write_report
    from arrpo.eval.runner import EvalRunner, build_setups
    from arrpo.judge import judge_prompts_sha256

    if not pairs:
        raise RubricValidationError("no pairs to validate on")
    tasks = {p.task for p in pairs}
    if len(tasks) != 1:
        raise RubricValidationError(f"the pairs mix tasks {sorted(tasks)}; validate one task at a time")
    task: Task = next(iter(tasks))  # type: ignore[assignment]
    if rubric.task not in (None, task):
        raise RubricValidationError(f"the rubric is for {rubric.task!r} but the pairs are {task!r} pairs")
    settings = settings or AskSettings()
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pairs_sha = write_pairs(pairs, run_dir / "heldout.jsonl")
    rubric.save(run_dir / "rubric.json")
    if "zero-shot" in against:
        await zero_shot_rubric(backend, task, run_dir)
    specs = _judge_specs(against, task, settings)
    (run_dir / "judges.yaml").write_text(
        "# Judges of this validation; rerun with:\n"
        f"#   arrpo eval --dataset jsonl:{run_dir / 'heldout.jsonl'} --judge {run_dir / 'judges.yaml'} "
        "--out OTHER --endpoint URL --model NAME\n"
        + yaml.safe_dump({"judges": specs}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    config = load_config(run_dir / "judges.yaml")
    setups = build_setups(config, run_dir, {spec.name: backend for spec in config.judges})
    current = {
        "model": model_name(backend),
        "judges": {s.name: {"spec": s.spec.model_dump(mode="json"), "prompts_sha256": judge_prompts_sha256(),
                            "rubrics": {t: r.render() for t, r in s.rubrics.by_task.items()}} for s in setups},
    }
    for name in _retire_stale(run_dir, current):
        if on_note:
            on_note(f"judge {name!r} changed since the last validation in {run_dir}: its old verdicts were set aside")
    held = load_pairs(f"jsonl:{run_dir / 'heldout.jsonl'}")
    runner = EvalRunner(setups, run_dir, forward=config.forward, max_pixels=max_pixels, max_pending=max_pending)
    await runner.run(held, info={"dataset": f"jsonl:{run_dir / 'heldout.jsonl'}", "images": None, "options": []},
                     on_record=on_record)
    write_report(run_dir, resamples=resamples, seed=seed)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    judges = {}
    for name, data in metrics["judges"].items():
        overall = data["overall"]
        judges[name] = {
            "judged": data["judged"],
            **{k: overall["values"][k] for k in REPORTED},
            "intervals": overall.get("intervals", {}),
        }
    return ValidationResult(run_dir=run_dir, pairs=len(held), pairs_sha256=pairs_sha, model=model_name(backend),
                            judges=judges)


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
