"""``arrpo rubric``: write a rubric zero-shot, learn one from labelled pairs, or show one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from arrpo.cli._common import (
    ApiKeyEnv,
    CachePath,
    Concurrency,
    Endpoint,
    Model,
    NoCache,
    Retries,
    Timeout,
    backend_settings,
    console,
    fail,
)

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
def write_command(
    task: TaskOption = "t2i",
    out: Annotated[Path, typer.Option("--out", help="Rubric JSON file to write.")] = ...,  # type: ignore[assignment]
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="Write a rubric for this one prompt.")] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="Source image of an edit prompt.")] = None,
    max_themes: MaxThemes = 10,
    max_tips: MaxTips = 4,
    rubric_cache: Annotated[Optional[Path], typer.Option("--rubric-cache", help="Folder caching prompt-level rubrics by prompt hash.")] = None,
    endpoint: Endpoint = None,
    model: Model = None,
    api_key_env: ApiKeyEnv = None,
    timeout: Timeout = 120.0,
    concurrency: Concurrency = 16,
    retries: Retries = 4,
    no_cache: NoCache = False,
    cache_path: CachePath = None,
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
    backend = _open(backend_settings(endpoint, model, api_key_env, timeout, concurrency, retries, no_cache, cache_path))
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
    console.print(f"wrote {len(rubric.themes)} themes to {out}")


@rubric_app.command("learn")
def learn_command(
    pairs: Annotated[Path, typer.Option("--pairs", help="Labelled seed pairs (project JSONL, authors' JSON or MJ-Bench JSON).")] = ...,  # type: ignore[assignment]
    out: Annotated[Path, typer.Option("--out", help="Rubric JSON file to write.")] = ...,  # type: ignore[assignment]
    task: TaskOption = "t2i",
    seed_format: Annotated[str, typer.Option("--format", help="auto | jsonl | authors | mjbench.")] = "auto",
    images: Annotated[Optional[Path], typer.Option("--images", help="Root for relative image paths (default: the seed file's folder).")] = None,
    guide: Annotated[Optional[Path], typer.Option("--guide", help="Guide exemplars (JSONL) shown to the generator.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Criteria generated per pair.")] = 5,
    t_max: Annotated[int, typer.Option("--t-max", min=0, help="Refinements per pair before dropping it.")] = 5,
    verify_order: Annotated[str, typer.Option("--verify-order", help="random | both (both orders must agree).")] = "random",
    seed: Annotated[int, typer.Option("--seed", help="Salt for the verifier's order and the MJ-Bench A/B coin.")] = 0,
    max_themes: MaxThemes = 10,
    max_tips: MaxTips = 4,
    mcr_select: Annotated[Optional[int], typer.Option("--mcr-select", min=1, help="Keep this many criteria by MCR² diversity before structuring (needs the 'mcr' extra).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Use only the first N pairs.")] = None,
    state: Annotated[Optional[Path], typer.Option("--state", help="Resumable state file (default: OUT.state.jsonl).")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard the state file and start over.")] = False,
    allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="Build the rubric even if some pairs failed with backend errors.")] = False,
    pair_concurrency: Annotated[int, typer.Option("--pair-concurrency", min=1, help="Pairs learned at once.")] = 8,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Downscale images above this many pixels.")] = None,
    endpoint: Endpoint = None,
    model: Model = None,
    api_key_env: ApiKeyEnv = None,
    timeout: Timeout = 120.0,
    concurrency: Concurrency = 16,
    retries: Retries = 4,
    no_cache: NoCache = False,
    cache_path: CachePath = None,
) -> None:
    """Learn a verified Theme-Tips rubric from labelled pairs (resumable).

    arrpo rubric learn --pairs seeds.jsonl --task t2i --out rubric.json --endpoint URL --model NAME
    """
    from arrpo.rubrics.guide import read_guide
    from arrpo.rubrics.learn import LearnConfig, RubricLearner
    from arrpo.rubrics.seeds import read_seeds
    from arrpo.vlm import BackendError

    _check_task(task)
    if verify_order not in ("random", "both"):
        raise fail(f"--verify-order must be random or both (got {verify_order!r})")
    if seed_format not in ("auto", "jsonl", "authors", "mjbench"):
        raise fail(f"--format must be auto, jsonl, authors or mjbench (got {seed_format!r})")
    seeds = read_seeds(pairs, task=task, format=seed_format, images_root=images, seed=seed)  # type: ignore[arg-type]
    loaded_guide = read_guide(guide, task, max_pixels=max_pixels) if guide else None  # type: ignore[arg-type]
    if limit is not None:
        seeds.pairs = seeds.pairs[:limit]
    for note in seeds.skipped[:5]:
        console.print(f"skipped {note}", highlight=False)
    state_path = state or out.with_name(out.name + ".state.jsonl")
    if restart and state_path.exists():
        state_path.unlink()
    config = LearnConfig(
        task=task, k=k, t_max=t_max, verify_order=verify_order, seed=seed,  # type: ignore[arg-type]
        max_themes=max_themes, max_tips=max_tips, mcr_select=mcr_select,
        pair_concurrency=pair_concurrency, max_pixels=max_pixels,
    )
    backend = _open(backend_settings(endpoint, model, api_key_env, timeout, concurrency, retries, no_cache, cache_path))
    learner = RubricLearner(backend, config, guide=loaded_guide)

    try:
        result = asyncio.run(_learn(learner, seeds, state_path, allow_incomplete))
    except BackendError as exc:
        raise fail(f"structuring failed: {exc}. The pairs are saved in {state_path}; run again to resume.", 1) from None
    except RuntimeError as exc:  # MCR² model/extra missing
        raise fail(str(exc), 1) from None
    _print_summary(result, backend)
    if result.rubric is None:
        raise fail(f"{result.message}. Progress is saved in {state_path}.", code=1)
    result.rubric.save(out)
    provenance = result.rubric.provenance
    how = "model" if getattr(provenance, "structure", "model") == "model" else "fallback list (model output unusable)"
    console.print(f"wrote {len(result.rubric.themes)} themes to {out} (structured by {how})", highlight=False)


async def _learn(learner, seeds, state_path: Path, allow_incomplete: bool):
    from arrpo.progress import CountingProgress
    from arrpo.rubrics.state import read_state

    keys = ("passed_first", "refined", "dropped", "bad_input", "failed")
    with CountingProgress(len(seeds.pairs), "learning", keys, hide_zero=("bad_input",), console=console) as bar:

        def on_outcome(outcome) -> None:
            bar.advance(outcome.status)

        def on_error(pair, message) -> None:
            bar.advance("failed")
            bar.console.print(f"pair {pair.id}: {message}", highlight=False)

        try:
            already = len(set(read_state(state_path, learner.fingerprint(seeds))) & {p.id for p in seeds.pairs})
            if already:
                bar.console.print(f"resuming: {already} of {len(seeds.pairs)} pairs already done in {state_path}")
                bar.advance(steps=already)
            return await learner.learn(
                seeds, state_path, on_outcome=on_outcome, on_error=on_error, allow_incomplete=allow_incomplete
            )
        finally:
            await learner.backend.aclose()


def _print_summary(result, backend) -> None:
    from rich.table import Table

    s = result.summary
    table = Table(title="rubric learning")
    for name in ("pairs", "passed first", "refined", "dropped", "bad input", "failed", "first-pass rate",
                 "refined rate", "dropped rate", "mean verifications"):
        table.add_column(name, justify="right")
    table.add_row(
        str(s.pairs), str(s.passed_first), str(s.refined), str(s.dropped), str(s.bad_input), str(s.failed),
        f"{s.rate(s.passed_first):.1%}", f"{s.rate(s.refined):.1%}", f"{s.rate(s.dropped):.1%}",
        f"{s.mean_attempts:.2f}",
    )
    console.print(table)
    totals = getattr(backend, "totals", None)
    if totals is not None:
        console.print(
            f"requests: {totals.requests} ({totals.cached} cached, {totals.errors} failed), "
            f"tokens: {totals.usage.prompt_tokens} in / {totals.usage.completion_tokens} out",
            highlight=False,
        )


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
    typer.echo(f"{file}: {rubric.task or 'any task'} {scope}, {len(rubric.themes)} themes\n")
    typer.echo(rubric.render())
    table = Table(title="provenance", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in rubric.provenance.model_dump(exclude_none=True).items():
        table.add_row(key, str(value))
    console.print(table)
