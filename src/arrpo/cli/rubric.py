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
    settings_from_options,
    terminal_text,
    with_vlm_options,
)
from arrpo.vlm.settings import BackendSettings

rubric_app = typer.Typer(help="Write, learn and show Theme-Tips rubrics.", no_args_is_help=True)

TaskOption = Annotated[str, typer.Option("--task", help="t2i | edit.")]
MaxThemes = Annotated[int, typer.Option("--max-themes", min=1, help="Most themes in the rubric.")]
MaxTips = Annotated[int, typer.Option("--max-tips", min=0, help="Most tips per theme.")]


def register(app: typer.Typer) -> None:
    app.add_typer(rubric_app, name="rubric")


def _check_task(task: str) -> str:
    if task not in ("t2i", "edit"):
        raise fail(f"--task must be t2i or edit (got {task!r})")
    return task


def _open(settings):
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

    _check_task(task)
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
def learn_command(
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Labelled seed pairs (project JSONL, authors' JSON or MJ-Bench JSON).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Rubric JSON file to write.")] = ...,  # type: ignore[assignment]
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Seed pairs from a benchmark instead of --pairs: KIND:PATH as for arrpo eval (ties left out).")] = None,
    dataset_option: Annotated[Optional[list[str]], typer.Option("--dataset-option", help="Adapter option key=value for --dataset (split, config, ...).")] = None,
    task: TaskOption = "t2i",
    seed_format: Annotated[str, typer.Option("--format", help="auto | jsonl | authors | mjbench.")] = "auto",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root for relative image paths (default: the seed file's folder).")] = None,
    guide: Annotated[Optional[Path], typer.Option("--guide", help="Guide exemplars (JSONL) shown to the generator.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Criteria generated per pair.")] = 5,
    t_max: Annotated[int, typer.Option("--t-max", min=0, help="Refinements per pair before dropping it.")] = 5,
    verify_order: Annotated[str, typer.Option("--verify-order", help="both (the verifier must pick the preferred image in both orders) | random (one order per pair, kept for its refinements).")] = "both",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the verifier's random order, the held-out split and the MJ-Bench A/B coin.")] = 0,
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
    vlm: BackendSettings,
) -> None:
    """Learn a verified Theme-Tips rubric from labelled pairs (resumable); writes report.html beside it.

    arrpo rubric learn --pairs seeds.jsonl --task t2i --out rubric.json --holdout 20% --endpoint URL --model NAME
    """
    from arrpo.datasets.seeds import read_seed_dataset, read_seeds
    from arrpo.rubrics.guide import read_guide
    from arrpo.rubrics.learn import LearnConfig, RubricLearner
    from arrpo.rubrics.state import LearnStateError
    from arrpo.vlm import BackendError

    _check_task(task)
    if verify_order not in ("random", "both"):
        raise fail(f"--verify-order must be random or both (got {verify_order!r})")
    if seed_format not in ("auto", "jsonl", "authors", "mjbench"):
        raise fail(f"--format must be auto, jsonl, authors or mjbench (got {seed_format!r})")
    if (pairs is None) == (dataset is None):
        raise fail("give the seed pairs with exactly one of --pairs FILE and --dataset KIND:PATH")
    from arrpo.cli.eval import _options

    dataset_options = _options(dataset_option or [])
    # a SeedFileError / GuideFileError is an ArrpoError: the CLI's one handler prints it, exit 2
    if dataset is not None:
        seeds = read_seed_dataset(dataset, task=task, images_root=images,  # type: ignore[arg-type]
                                  options=dataset_options, seed=seed)
    else:
        seeds = read_seeds(pairs, task=task, format=seed_format, images_root=images, seed=seed)  # type: ignore[arg-type]
    loaded_guide = read_guide(guide, task, max_pixels=max_pixels) if guide else None  # type: ignore[arg-type]
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
    )
    backend = _open(vlm)
    learner = RubricLearner(backend, config, guide=loaded_guide)

    from arrpo.rubrics.report import RUN_RECORD, write_learn_report

    run_record = {
        "kind": RUN_RECORD, "rubric": str(out.resolve()), "seed_file": str(pairs.resolve()) if pairs else None,
        "dataset": dataset, "dataset_options": dataset_options,
        "format": seed_format, "images": str(images.resolve()) if images else None, "task": task, "seed": seed,
        "limit": limit, "holdout": holdout, "learn_ids": [p.id for p in seeds.pairs],
        "heldout_ids": [p.id for p in heldout],
        "holdout_dir": str(_holdout_dir(out).resolve()) if heldout else None,
    }
    try:
        result, validation_error = asyncio.run(_learn(learner, seeds, state_path, allow_incomplete, run_record,
                                                      heldout, baselines, out, resamples))
    except LearnStateError as exc:
        raise fail(str(exc)) from None
    except BackendError as exc:
        raise fail(f"a model call failed: {exc}. The pairs are saved in {state_path}; run again to resume.", 1) from None
    except RuntimeError as exc:  # MCR² model/extra missing
        raise fail(str(exc), 1) from None
    if result.rubric is not None:
        result.rubric.save(out)  # now with the held-out result in its provenance
    report = write_learn_report(state_path)
    if result.rubric is None:
        say(f"learning report: {report}")
        raise fail(f"{result.message}. Progress is saved in {state_path}.", code=1)
    provenance = result.rubric.provenance
    how = "model" if getattr(provenance, "structure", "model") == "model" else "fallback list (model output unusable)"
    say(f"wrote {len(result.rubric.themes)} themes to {out} (structured by {how})")
    held = getattr(provenance, "holdout", None)
    if held:
        _print_validation(held["judges"], f"held-out pairs ({held['pairs']})")
    say(f"learning report: {report}")
    if validation_error:
        raise fail(f"the held-out comparison failed ({validation_error}); the rubric is saved without it. "
                   f"Run the same command again to resume it (verdicts so far are in {_holdout_dir(out)}).", 1)


def _holdout_dir(out: Path) -> Path:
    """Where the held-out comparison of a rubric lives: beside it."""
    return out.with_name(out.stem + ".holdout")


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


async def _learn(learner, seeds, state_path: Path, allow_incomplete: bool, run_record: dict,
                 heldout: list, baselines: list[str], out: Path, resamples: int):
    from arrpo.jsonl import JsonlWriter
    from arrpo.progress import CountingProgress
    from arrpo.rubrics.state import read_state

    keys = ("passed_first", "refined", "dropped", "bad_input", "failed")
    with CountingProgress(len(seeds.pairs), "learning", keys, hide_zero=("bad_input",), console=console) as bar:

        def on_outcome(outcome) -> None:
            bar.advance(outcome.status)

        def on_error(pair, message) -> None:
            bar.advance("failed")
            say(f"pair {pair.id}: {message}", to=bar.console)  # the message may quote the model or server

        try:
            already = len(set(read_state(state_path, learner.fingerprint(seeds))) & {p.id for p in seeds.pairs})
            with JsonlWriter(state_path) as writer:  # the state is ours: say what this run learns from
                writer.write(run_record)
            if already:
                say(f"resuming: {already} of {len(seeds.pairs)} pairs already done in {state_path}", to=bar.console)
                bar.advance(steps=already)
            result = await learner.learn(
                seeds, state_path, on_outcome=on_outcome, on_error=on_error, allow_incomplete=allow_incomplete
            )
        except BaseException:
            await learner.backend.aclose()
            raise
    _print_summary(result, learner.backend)  # before the held-out comparison adds its own requests
    validation_error = None
    try:
        if result.rubric is not None:
            result.rubric.save(out)  # kept even if the held-out comparison fails below
            if heldout:
                result.rubric, validation_error = await _validate_heldout(
                    learner, result.rubric, heldout, baselines, out, resamples)
    finally:
        await learner.backend.aclose()
    return result, validation_error


async def _validate_heldout(learner, rubric, heldout: list, baselines: list[str], out: Path, resamples: int):
    """Measure the learned rubric on the held-out pairs; returns it with the result in its provenance."""
    from arrpo.eval.config import ConfigError
    from arrpo.eval.validate import validate_rubric
    from arrpo.judge_settings import AskSettings
    from arrpo.rubrics.write import RubricWriteError
    from arrpo.vlm import BackendError

    cfg = learner.config
    say(f"validating on {len(heldout)} held-out pairs: {', '.join([*baselines, 'learned'])}")
    try:
        result = await validate_rubric(
            rubric, heldout, learner.backend, _holdout_dir(out), against=baselines,
            settings=AskSettings(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
            max_pixels=cfg.max_pixels, resamples=resamples, seed=cfg.seed,
            on_note=say,
        )
    except (BackendError, RubricWriteError, ConfigError, ValueError) as exc:
        return rubric, f"{type(exc).__name__}: {exc}"
    held = result.provenance(split_seed=cfg.seed, held_out_ids=[p.id for p in heldout])
    provenance = rubric.provenance.model_copy(update={"holdout": held})
    return rubric.model_copy(update={"provenance": provenance}), None


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
def validate_command(
    rubric_file: Annotated[Path, typer.Argument(help="Rubric JSON file to measure.")],
    pairs: Annotated[Path, typer.Option("--pairs", help="Labelled pairs (any seed format of 'rubric learn').")] = ...,  # type: ignore[assignment]
    against: Annotated[str, typer.Option("--against", help="Baselines: zero-shot,direct (either or both).")] = "zero-shot,direct",
    out: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default: RUBRIC.validation/ beside the rubric; an existing one is resumed).")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="t2i | edit (default: the rubric's task).")] = None,
    seed_format: Annotated[str, typer.Option("--format", help="auto | jsonl | authors | mjbench.")] = "auto",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root for relative image paths.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the MJ-Bench A/B coin and the bootstrap.")] = 0,
    record: Annotated[bool, typer.Option("--record", help="Store the result in the rubric file's provenance ('validation').")] = False,
    temperature: Annotated[float, typer.Option("--temperature", help="Judges' sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Judges' answer limit.")] = 1024,
    resamples: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals.")] = 1000,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", help="Downscale images above this many pixels.")] = None,
    *,
    vlm: BackendSettings,
) -> None:
    """Measure a rubric on labelled pairs against the direct judge and a zero-shot rubric, both orders.

    arrpo rubric validate rubric.json --pairs heldout.jsonl --against zero-shot,direct --endpoint URL --model NAME
    """
    from arrpo.datasets.seeds import SeedFileError, read_seeds
    from arrpo.eval.validate import RubricValidationError, validate_rubric
    from arrpo.judge_settings import AskSettings
    from arrpo.rubric import Rubric
    from arrpo.vlm import BackendError

    try:
        rubric = Rubric.load(rubric_file)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read rubric {rubric_file}: {exc}") from None
    task = _check_task(task or rubric.task or "t2i")
    baselines = _against(against)
    try:
        seeds = read_seeds(pairs, task=task, format=seed_format, images_root=images, seed=seed)  # type: ignore[arg-type]
    except SeedFileError as exc:
        raise fail(str(exc)) from None
    run_dir = out or rubric_file.with_name(rubric_file.stem + ".validation")
    settings = settings_from_options(AskSettings, temperature=temperature, max_tokens=max_tokens)
    backend = _open(vlm)

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
    except Exception as exc:  # the eval pipeline's own errors (bad rubric file, config)
        from arrpo.eval.config import ConfigError
        from arrpo.rubrics.write import RubricWriteError

        if isinstance(exc, (ConfigError, RubricWriteError)):
            raise fail(str(exc), 1) from None
        raise
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
