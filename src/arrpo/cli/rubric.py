"""``arrpo rubric``: write a rubric zero-shot, learn one from labelled pairs, or show one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from arrpo.cli._common import (
    cell,
    console,
    fail,
    say,
    terminal_text,
    with_judge_options,
    with_vlm_options,
)
from arrpo.judge_settings import AskSettings
from arrpo.rubrics.learn import LEARN_MAX_TOKENS
from arrpo.vlm.settings import BackendSettings
from arrpo.vocab import SeedFormat, Task, VerifyOrder

rubric_app = typer.Typer(help="Write, learn and show Theme-Tips rubrics.", no_args_is_help=True)

TaskOption = Annotated[Task, typer.Option("--task", help="What the rubric judges: t2i (text to image) or edit.")]
FormatOption = Annotated[SeedFormat, typer.Option("--format", help="Format of the labelled pairs (auto: from the file).")]
MaxThemes = Annotated[int, typer.Option("--max-themes", min=1, help="Most themes in the rubric.")]
MaxTips = Annotated[int, typer.Option("--max-tips", min=0, help="Most tips per theme.")]


def register(app: typer.Typer) -> None:
    app.add_typer(rubric_app, name="rubric")


def _open(settings: BackendSettings):
    from arrpo.vlm.settings import open_backend

    return open_backend(settings)  # BackendUnavailable is reported by the one CLI error handler


@rubric_app.command("write")
@with_vlm_options()
def write_command(
    task: TaskOption = "t2i",
    out: Annotated[Path, typer.Option("--out", help="Rubric JSON file to write.")] = ...,  # type: ignore[assignment]
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="Write a rubric for this one prompt.")] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="Source image of an edit prompt.")] = None,
    max_themes: MaxThemes = 10,
    max_tips: MaxTips = 4,
    rubric_cache: Annotated[Optional[Path], typer.Option("--rubric-cache", help="Folder caching prompt-level rubrics by prompt hash.")] = None,
    *,
    vlm: BackendSettings,
) -> None:
    """Write a rubric zero-shot: for a task, or (with --prompt) for one prompt.

    arrpo rubric write --task t2i --out t2i.json --endpoint URL --model NAME
    """
    from arrpo.images import load_image
    from arrpo.rubrics.write import RubricWriteError, RubricWriter
    from arrpo.vlm import BackendError

    if source is not None and prompt is None:
        raise fail("--source needs --prompt (the editing instruction)")
    if prompt is not None and task == "edit" and source is None:
        raise fail("an edit prompt rubric needs --source IMAGE")
    if task == "t2i" and source is not None:
        raise fail("--source is for --task edit")
    loaded = None
    if source is not None:
        loaded = load_image(source)
    backend = _open(vlm)
    writer = RubricWriter(backend, max_themes=max_themes, max_tips=max_tips, cache_dir=rubric_cache)

    async def run():
        try:
            if prompt is None:
                return await writer.write_task(task)  # type: ignore[arg-type]
            return await writer.write_prompt(task, prompt, loaded)  # type: ignore[arg-type]
        finally:
            await backend.aclose()

    try:
        rubric = asyncio.run(run())
    except (RubricWriteError, BackendError) as exc:
        raise fail(f"could not write the rubric: {exc}", code=1) from None
    rubric.save(out)
    say(f"wrote {len(rubric.themes)} themes to {out}")


@rubric_app.command("learn")
@with_vlm_options()
@with_judge_options(AskSettings, defaults={"max_tokens": LEARN_MAX_TOKENS})
def learn_command(
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Labelled seed pairs (project JSONL, authors' JSON or MJ-Bench JSON).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Rubric JSON file to write.")] = ...,  # type: ignore[assignment]
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Seed pairs from a benchmark instead of --pairs: KIND:PATH as for arrpo eval (ties left out).")] = None,
    dataset_option: Annotated[Optional[list[str]], typer.Option("--dataset-option", help="Adapter option key=value for --dataset (split, config, ...).")] = None,
    task: TaskOption = "t2i",
    seed_format: FormatOption = "auto",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root for relative image paths (default: the seed file's folder).")] = None,
    guide: Annotated[Optional[Path], typer.Option("--guide", help="Guide exemplars (JSONL) shown to the generator.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Criteria generated per pair.")] = 5,
    t_max: Annotated[int, typer.Option("--t-max", min=0, help="Refinements per pair before dropping it.")] = 5,
    verify_order: Annotated[VerifyOrder, typer.Option("--verify-order", help="both (the verifier must pick the preferred image in both orders) | random (one order per pair, kept for its refinements).")] = "both",
    seed: Annotated[int, typer.Option("--seed", help="Seed of this command's randomness: the verifier's random order, the held-out split, the MJ-Bench A/B coin.")] = 0,
    max_themes: MaxThemes = 10,
    max_tips: MaxTips = 4,
    mcr_select: Annotated[Optional[int], typer.Option("--mcr-select", min=1, help="Keep this many criteria by MCR² diversity before structuring (needs the 'mcr' extra).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Use only the first N pairs.")] = None,
    state: Annotated[Optional[Path], typer.Option("--state", help="Resumable state file (default: OUT.state.jsonl).")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard the state file and start over.")] = False,
    allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="Build the rubric even if some pairs failed with backend errors.")] = False,
    pair_concurrency: Annotated[int, typer.Option("--pair-concurrency", min=1, help="Pairs learned at once.")] = 8,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Downscale images above this many pixels.")] = None,
    holdout: Annotated[Optional[str], typer.Option("--holdout", help="Keep N pairs (or a fraction: 0.2, 20%) out of learning and measure the rubric on them against the direct judge and a zero-shot rubric.")] = None,
    against: Annotated[str, typer.Option("--against", help="Baselines of the held-out comparison: zero-shot,direct.")] = "zero-shot,direct",
    resamples: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the held-out 95% intervals.")] = 1000,
    *,
    judge_settings: AskSettings,
    vlm: BackendSettings,
) -> None:
    """Learn a verified Theme-Tips rubric from labelled pairs (resumable); writes report.html beside it.

    The judge options are the ask settings of the held-out judges (--holdout); --temperature and
    --max-tokens are also every learning call's (generator, verifier, refiner).

    arrpo rubric learn --pairs seeds.jsonl --task t2i --out rubric.json --holdout 20% --endpoint URL --model NAME
    """
    from arrpo.eval.validate import holdout_dir
    from arrpo.rubrics.learn import LearnConfig, RubricLearner
    from arrpo.rubrics.report import write_learn_report

    if (pairs is None) == (dataset is None):
        raise fail("give the seed pairs with exactly one of --pairs FILE and --dataset KIND:PATH")
    seeds, dataset_options = _read_seed_pairs(pairs, dataset, dataset_option or [], task, seed_format, images, seed)
    loaded_guide = _read_guide(guide, task, max_pixels)
    if limit is not None:
        seeds.pairs = seeds.pairs[:limit]
    for note in seeds.skipped[:5]:
        say(f"skipped {note}")
    heldout = _split(seeds, holdout, seed)
    baselines = _against(against)
    state_path = state or out.with_name(out.name + ".state.jsonl")
    if restart and state_path.exists():
        state_path.unlink()
    config = LearnConfig(
        task=task, k=k, t_max=t_max, verify_order=verify_order, seed=seed,  # type: ignore[arg-type]
        max_themes=max_themes, max_tips=max_tips, mcr_select=mcr_select,
        pair_concurrency=pair_concurrency, max_pixels=max_pixels,
        temperature=judge_settings.temperature, max_tokens=judge_settings.max_tokens,
    )
    learner = RubricLearner(_open(vlm), config, guide=loaded_guide)
    run_record = _run_record(out, pairs, dataset, dataset_options, seed_format, images, task, seed, limit, holdout,
                             seeds, heldout)
    learned = _learn(learner, seeds, out, state_path, heldout, baselines, resamples, allow_incomplete, run_record,
                     judge_settings)
    report = write_learn_report(state_path)
    if learned.rubric is None:
        say(f"learning report: {report}")
        raise fail(f"{learned.learned.message}. Progress is saved in {state_path}.", code=1)
    provenance = learned.rubric.provenance
    how = "model" if getattr(provenance, "structure", "model") == "model" else "fallback list (model output unusable)"
    say(f"wrote {len(learned.rubric.themes)} themes to {out} (structured by {how})")
    held = getattr(provenance, "holdout", None)
    if held:
        _print_validation(held["judges"], f"held-out pairs ({held['pairs']})")
    say(f"learning report: {report}")
    if learned.validation_error:
        raise fail(f"the held-out comparison failed ({learned.validation_error}); the rubric is saved without it. "
                   f"Run the same command again to resume it (verdicts so far are in {holdout_dir(out)}).", 1)


def _read_seed_pairs(pairs: Path | None, dataset: str | None, dataset_option: list[str], task: str,
                     seed_format: str, images: Path | None, seed: int):
    """The seed pairs (a SeedFileError is an ArrpoError: the CLI's one handler prints it, exit 2)."""
    from arrpo.cli.eval import _options
    from arrpo.datasets.seeds import read_seed_dataset, read_seeds

    dataset_options = _options(dataset_option)
    if dataset is not None:
        seeds = read_seed_dataset(dataset, task=task, images_root=images,  # type: ignore[arg-type]
                                  options=dataset_options, seed=seed)
    else:
        seeds = read_seeds(pairs, task=task, format=seed_format, images_root=images, seed=seed)  # type: ignore[arg-type]
    return seeds, dataset_options


def _read_guide(guide: Path | None, task: str, max_pixels: int | None):
    from arrpo.rubrics.guide import read_guide

    return read_guide(guide, task, max_pixels=max_pixels) if guide else None  # type: ignore[arg-type]


def _run_record(out: Path, pairs: Path | None, dataset: str | None, dataset_options: dict, seed_format: str,
                images: Path | None, task: str, seed: int, limit: int | None, holdout: str | None,
                seeds, heldout: list) -> dict[str, Any]:
    """What the state records of this run's inputs (the learning report shows it)."""
    from arrpo.eval.validate import holdout_dir
    from arrpo.rubrics.report import RUN_RECORD

    return {
        "kind": RUN_RECORD, "rubric": str(out.resolve()), "seed_file": str(pairs.resolve()) if pairs else None,
        "dataset": dataset, "dataset_options": dataset_options,
        "format": seed_format, "images": str(images.resolve()) if images else None, "task": task, "seed": seed,
        "limit": limit, "holdout": holdout, "learn_ids": [p.id for p in seeds.pairs],
        "heldout_ids": [p.id for p in heldout],
        "holdout_dir": str(holdout_dir(out).resolve()) if heldout else None,
    }


def _split(seeds, holdout: str | None, seed: int) -> list:
    """Take the held-out pairs out of ``seeds`` (in place); returns them."""
    from arrpo.rubrics.holdout import HoldoutError, parse_holdout, split_holdout

    if holdout is None:
        return []
    try:
        seeds.pairs, held = split_holdout(seeds.pairs, parse_holdout(holdout), seed)
    except HoldoutError as exc:
        raise fail(str(exc)) from None
    say(f"holding out {len(held)} of {len(seeds.pairs) + len(held)} pairs (seed {seed})")
    return held


def _against(text: str) -> list[str]:
    from arrpo.eval.validate import RubricValidationError, parse_against

    try:
        return parse_against(text)
    except RubricValidationError as exc:
        raise fail(str(exc)) from None


def _learn(learner, seeds, out: Path, state_path: Path, heldout: list, baselines: list[str], resamples: int,
           allow_incomplete: bool, run_record: dict, settings: AskSettings):
    """:func:`arrpo.eval.validate.learn_and_validate` with a progress bar and the learning summary."""
    from arrpo.eval.validate import learn_and_validate
    from arrpo.progress import CountingProgress
    from arrpo.vlm import BackendError

    keys = ("passed_first", "refined", "dropped", "bad_input", "failed")
    bar = CountingProgress(len(seeds.pairs), "learning", keys, hide_zero=("bad_input",), console=console)
    shown = [True]

    def close_bar() -> None:
        if shown[0]:
            shown[0] = False
            bar.close()

    def started(already: int) -> None:
        if already:
            say(f"resuming: {already} of {len(seeds.pairs)} pairs already done in {state_path}", to=bar.console)
            bar.advance(steps=already)

    def failed(pair, message) -> None:
        bar.advance("failed")
        say(f"pair {pair.id}: {message}", to=bar.console)  # the message may quote the model or server

    def learned(result) -> None:
        close_bar()
        _print_summary(result, learner.backend)  # before the held-out comparison adds its own requests

    async def run():
        try:
            return await learn_and_validate(
                learner, seeds, out, state_path=state_path, heldout=heldout, against=baselines,
                resamples=resamples, allow_incomplete=allow_incomplete, run_record=run_record, on_start=started,
                settings=settings,
                on_outcome=lambda outcome: bar.advance(outcome.status), on_error=failed, on_learned=learned,
                on_note=lambda text: say(text, to=bar.console),
            )
        finally:
            close_bar()
            await learner.backend.aclose()

    try:
        return asyncio.run(run())
    except BackendError as exc:
        raise fail(f"a model call failed: {exc}. The pairs are saved in {state_path}; run again to resume.", 1) from None
    except RuntimeError as exc:  # MCR² model/extra missing
        raise fail(str(exc), 1) from None


def _print_summary(result, backend) -> None:
    from rich.table import Table

    s = result.summary
    table = Table(title="rubric learning")
    for name in ("pairs", "verified first pass", "verified after refinement", "dropped", "bad input", "failed",
                 "first-pass rate", "refined rate", "dropped rate", "mean verifications", "order disagreements"):
        table.add_column(name, justify="right")
    table.add_row(
        str(s.pairs), str(s.passed_first), str(s.refined), str(s.dropped), str(s.bad_input), str(s.failed),
        f"{s.rate(s.passed_first):.1%}", f"{s.rate(s.refined):.1%}", f"{s.rate(s.dropped):.1%}",
        f"{s.mean_attempts:.2f}", f"{s.order_disagreements} of {s.failed_verifications} failed",
    )
    console.print(table)
    console.print(
        f"learning spent {s.calls} model calls, {s.prompt_tokens} prompt + {s.completion_tokens} completion tokens",
        highlight=False,
    )
    totals = getattr(backend, "totals", None)
    if totals is not None:
        console.print(
            f"requests: {totals.requests} ({totals.cached} cached, {totals.errors} failed), "
            f"tokens: {totals.usage.prompt_tokens} in / {totals.usage.completion_tokens} out",
            highlight=False,
        )


def _print_validation(judges: dict, title: str) -> None:
    from rich.table import Table

    from arrpo.eval.validate import table_rows

    table = Table(title=cell(title))
    for name in ("judge", "n", "forward", "reverse", "mean [95% CI]", "Δ", "swap consistency", "ties", "invalid"):
        table.add_column(name, justify="left" if name == "judge" else "right")

    def pct(value) -> str:
        return "–" if value is None else f"{value:.1f}"

    for row in table_rows(judges):
        ci = f" [{row['mean_ci'][0]:.1f}, {row['mean_ci'][1]:.1f}]" if row["mean_ci"] else ""
        table.add_row(cell(row["judge"]), str(row["n"]), pct(row["forward"]), pct(row["reverse"]), pct(row["mean"]) + ci,
                      pct(row["delta"]), pct(row["consistency"]), pct(row["tie_rate"]), pct(row["invalid_rate"]))
    console.print(table)


@rubric_app.command("validate")
@with_vlm_options()
@with_judge_options(AskSettings)
def validate_command(
    rubric_file: Annotated[Path, typer.Argument(help="Rubric JSON file to measure.")],
    pairs: Annotated[Path, typer.Option("--pairs", help="Labelled pairs (any seed format of 'rubric learn').")] = ...,  # type: ignore[assignment]
    against: Annotated[str, typer.Option("--against", help="Baselines: zero-shot,direct (either or both).")] = "zero-shot,direct",
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: RUBRIC.validation/ beside the rubric; an existing one is resumed).")] = None,
    task: Annotated[Optional[Task], typer.Option("--task", help="What the rubric judges: t2i (text to image) or edit (default: the rubric's task).")] = None,
    seed_format: FormatOption = "auto",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root for relative image paths.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of this command's randomness: the MJ-Bench A/B coin and the bootstrap.")] = 0,
    record: Annotated[bool, typer.Option("--record", help="Store the result in the rubric file's provenance ('validation').")] = False,
    resamples: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals.")] = 1000,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Downscale images above this many pixels.")] = None,
    *,
    judge_settings: AskSettings,
    vlm: BackendSettings,
) -> None:
    """Measure a rubric on labelled pairs against the direct judge and a zero-shot rubric, both orders.

    Every judge (the rubric, each baseline) asks with the same judge options, in both orders.

    arrpo rubric validate rubric.json --pairs heldout.jsonl --against zero-shot,direct --endpoint URL --model NAME
    """
    from arrpo.datasets.seeds import SeedFileError, read_seeds
    from arrpo.eval.config import ConfigError
    from arrpo.eval.validate import RubricValidationError, validate_rubric
    from arrpo.rubric import Rubric
    from arrpo.rubrics.write import RubricWriteError
    from arrpo.vlm import BackendError

    try:
        rubric = Rubric.load(rubric_file)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read rubric {rubric_file}: {exc}") from None
    task = task or rubric.task or "t2i"
    baselines = _against(against)
    try:
        seeds = read_seeds(pairs, task=task, format=seed_format, images_root=images, seed=seed)  # type: ignore[arg-type]
    except SeedFileError as exc:
        raise fail(str(exc)) from None
    run_dir = out or rubric_file.with_name(rubric_file.stem + ".validation")
    settings = judge_settings
    backend = _open(vlm)  # even for an evidence-only judge: the zero-shot baseline writes its rubric

    async def run():
        try:
            return await validate_rubric(
                rubric, seeds.pairs, backend, run_dir, against=baselines,
                settings=settings, max_pixels=max_pixels,
                resamples=resamples, seed=seed, on_note=say,
            )
        finally:
            await backend.aclose()

    try:
        result = asyncio.run(run())
    except RubricValidationError as exc:
        raise fail(str(exc)) from None
    except BackendError as exc:
        raise fail(f"a model call failed: {exc}; run again to resume ({run_dir})", 1) from None
    except (ConfigError, RubricWriteError) as exc:  # the eval pipeline's own errors (bad rubric file, config)
        raise fail(str(exc), 1) from None
    _print_validation(result.judges, f"{rubric_file.name} on {result.pairs} pairs from {pairs.name}")
    if record:
        provenance = rubric.provenance.model_copy(update={"validation": result.provenance(pairs_file=str(pairs))})
        rubric.model_copy(update={"provenance": provenance}).save(rubric_file)
        say(f"recorded the result in {rubric_file}")
    say(f"run directory: {run_dir} (report.html, metrics.json; judges.yaml + heldout.jsonl to rerun with arrpo eval)")


@rubric_app.command("report")
def report_command(
    state_dir: Annotated[Path, typer.Argument(help="Folder of a learned rubric and its .state.jsonl (or the state file).")],
) -> None:
    """Rewrite the learning report (report.html beside the rubric) from a learning state.

    arrpo rubric report runs/t2i-rubric/
    """
    from arrpo.rubrics.report import ReportError, find_state, write_learn_report

    try:
        path = write_learn_report(find_state(state_dir))
    except ReportError as exc:
        raise fail(str(exc)) from None
    typer.echo(str(path))


@rubric_app.command("show")
def show_command(
    file: Annotated[Path, typer.Argument(help="Rubric JSON file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON instead of the text.")] = False,
) -> None:
    """Print a rubric's text and its provenance."""
    from rich.table import Table

    from arrpo.rubric import Rubric

    try:
        rubric = Rubric.load(file)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read rubric {file}: {exc}") from None
    if as_json:
        typer.echo(rubric.to_json(), nl=False)
        return
    scope = f"{rubric.scope} rubric" + (f" for {rubric.prompt!r}" if rubric.prompt else "")
    typer.echo(terminal_text(f"{file}: {rubric.task or 'any task'} {scope}, {len(rubric.themes)} themes\n"))
    typer.echo(terminal_text(rubric.render()))  # a written rubric is model text
    table = Table(title="provenance", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in rubric.provenance.model_dump(exclude_none=True).items():
        shown = _measurement(value) if key in ("holdout", "validation") and isinstance(value, dict) else value
        table.add_row(cell(key), cell(shown))
    console.print(table)


def _measurement(record: dict[str, Any]) -> str:
    """A held-out / validation record as lines a person reads: where it was measured, then each
    judge's mean accuracy and position bias Δ (the whole record is in ``arrpo rubric show --json``)."""

    def pct(value: Any) -> str:
        return f"{100 * value:.1f}%" if isinstance(value, (int, float)) and value == value else "n/a"

    lines = [f"{record.get('pairs', '?')} pairs, model {record.get('model', '?')}, {record.get('measured', '')}".strip(", ")]
    for name, values in (record.get("judges") or {}).items():
        if isinstance(values, dict):
            lines.append(f"{name}: mean {pct(values.get('mean'))} (fwd {pct(values.get('forward'))}, "
                         f"rev {pct(values.get('reverse'))}), Δ {pct(values.get('delta'))}")
    return "\n".join(lines)
