"""``arrpo eval`` (judge a benchmark in both orders, resumably) and ``arrpo report`` (write the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from arrpo.cli._common import (
    MaxInvalidShare,
    Ray,
    check_invalid_share,
    console,
    fail,
    say,
    with_vlm_overrides,
)
from arrpo.vocab import ForwardOrder


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("report")(report_command)


def _options(pairs: list[str]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--dataset-option takes key=value (got {item!r})")
        lowered = value.strip().lower()
        parsed[key.strip()] = True if lowered == "true" else False if lowered == "false" else value
    return parsed


@with_vlm_overrides()
def eval_command(
    dataset: Annotated[str, typer.Option("--dataset", help="KIND:PATH, e.g. mmrb2:t2i.json, mjbench:DIR, hpdv3:test.json.")],
    judge_config: Annotated[Path, typer.Option("--judge", help="YAML judge configuration (see examples/eval/judges.yaml).")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (created; an existing one is resumed).")],
    images: Annotated[Optional[Path], typer.Option("--images", help="Image root (default: the dataset file's folder).")] = None,
    dataset_option: Annotated[Optional[list[str]], typer.Option("--dataset-option", help="Adapter option key=value (seed, drop_ties, randomise_ab, subset_field, split, config, all_groups).")] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="Leave out pairs whose images are missing or unreadable (default: stop before judging).")] = False,
    forward: Annotated[Optional[ForwardOrder], typer.Option("--forward", help="What the forward order shows first: the preferred image, or the dataset's given order (overrides the judge file).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N pairs.")] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", min=1, help="A seeded random sample of N pairs.")] = None,
    retry_invalid: Annotated[bool, typer.Option("--retry-invalid", help="Ask again pairs with an invalid answer.")] = False,
    max_invalid_share: MaxInvalidShare = 0.5,
    resamples: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals.")] = 1000,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    ray: Ray = None,
    *,
    vlm_overrides: dict[str, object],
) -> None:
    """Evaluate judge configurations on a preference benchmark, forward and reversed.

    arrpo eval --dataset mjbench:data/mjbench --judge judges.yaml --out runs/mj --endpoint URL --model NAME

    The judge settings (order, prompt layout, evidence, ...) of each judge are in the judges file
    (docs/evaluation.md), not options: a run compares several judges. The VLM options override the
    file's backend section.

    Exit status: 0 done; 1 more than --max-invalid-share of a judge's answers are invalid (the
    report is written first); 2 a usage, configuration or dataset error.
    """
    from arrpo._sync import run_sync
    from arrpo.errors import BadInputError
    from arrpo.eval.runner import evaluate

    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: is a file; --out names the run directory (created if missing)")
    config, pairs = _load_inputs(judge_config, dataset, images, dataset_option or [], forward, vlm_overrides,
                                 limit=limit, sample=sample, skip_missing=skip_missing)
    bar: list[_Bar] = []

    def start(todo: int) -> None:
        total = len(pairs) * len(config.judges)
        say(f"{len(pairs)} pairs × {len(config.judges)} judge(s): {todo} to judge, {total - todo} already done in {out}")
        if not no_progress and todo:
            bar.append(_Bar(todo))

    info = {"dataset": dataset, "images": str(images) if images else None, "options": dataset_option or []}
    try:
        result = run_sync(evaluate(config, pairs, out, ray=ray, retry_invalid=retry_invalid, info=info,
                                   resamples=resamples, on_start=start, on_note=say,
                                   on_record=lambda judge, record: bar[0].advance(judge, record) if bar else None))
    finally:
        for shown in bar:
            shown.close()
    say(result.report.summary, soft_wrap=True)
    say(f"report: {result.report['report.html']}")
    for judge, total in result.answers.items():
        check_invalid_share(total, result.invalid_reasons[judge], max_invalid_share, f"answers of judge {judge!r}")


def _load_inputs(judge_config: Path, dataset: str, images: Path | None, dataset_option: list[str],
                 forward: str | None, overrides: dict[str, object], **selection: object):
    """The judge configuration (with the command line's backend settings) and the pairs to judge."""
    from arrpo.datasets import DatasetError, load_dataset
    from arrpo.eval.config import ConfigError, load_config

    try:
        config = load_config(judge_config)
        loaded = load_dataset(dataset, images, _options(dataset_option), **selection)  # type: ignore[arg-type]
    except (ConfigError, DatasetError) as exc:
        raise fail(str(exc)) from None
    if forward is not None:
        config = config.model_copy(update={"forward": forward})
    for note in loaded.notes:
        say(note)
    if loaded.skipped_missing:
        first = next(iter(loaded.skipped_missing.values()))[0]
        say(f"--skip-missing: left out {len(loaded.skipped_missing)} pairs with missing or unreadable "
            f"images (first: {first})")
    if not loaded.pairs:
        raise DatasetError(f"{dataset}: no pairs")
    config = config.model_copy(update={"backend": config.backend.model_copy(update=overrides)})
    return config, loaded.pairs


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by arrpo eval.")],
    resamples: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of this command's randomness: the bootstrap resamples.")] = 0,
) -> None:
    """Write metrics.json, summary.md, plots and the self-contained report.html of a run."""
    from arrpo.eval.report import write_report

    report = write_report(run_dir, resamples=resamples, seed=seed)
    say(report.summary, soft_wrap=True)  # subset names come from the dataset: printed as plain text
    for name in ("report.html", "summary.md", "metrics.json"):
        typer.echo(str(report[name]))


class _Bar:
    """Progress over (pair, judge) records, counting answers correct in each order and invalid ones."""

    def __init__(self, total: int):
        from arrpo.progress import CountingProgress

        self._bar = CountingProgress(total, "eval", ("fwd ok", "rev ok", "invalid"), console=console)

    def advance(self, judge: str, record) -> None:
        outcomes = [name for name, side in (("fwd ok", record.forward), ("rev ok", record.reverse)) if side.correct]
        if record.invalid:
            outcomes.append("invalid")
        self._bar.advance(*outcomes)

    def close(self) -> None:
        self._bar.close()
