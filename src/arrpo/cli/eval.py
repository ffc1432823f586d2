"""``arrpo eval`` (judge a benchmark in both orders, resumably) and ``arrpo report`` (write the report)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from arrpo.cli._common import (
    ApiKeyEnv,
    CachePath,
    Endpoint,
    MaxInvalidShare,
    Model,
    NoCache,
    Ray,
    check_invalid_share,
    console,
    fail,
    say,
)


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


def eval_command(
    dataset: Annotated[str, typer.Option("--dataset", help="KIND:PATH, e.g. mmrb2:t2i.json, mjbench:DIR, hpdv3:test.json.")],
    judge_config: Annotated[Path, typer.Option("--judge", help="YAML judge configuration (see examples/eval/judges.yaml).")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (created; an existing one is resumed).")],
    images: Annotated[Optional[Path], typer.Option("--images", help="Image root (default: the dataset file's folder).")] = None,
    dataset_option: Annotated[Optional[list[str]], typer.Option("--dataset-option", help="Adapter option key=value (seed, drop_ties, randomise_ab, subset_field, split, config, all_groups).")] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="Leave out pairs whose images are missing or unreadable (default: stop before judging).")] = False,
    forward: Annotated[Optional[str], typer.Option("--forward", help="preferred_first | given: what the forward order shows first (overrides the judge file).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N pairs.")] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", min=1, help="A seeded random sample of N pairs.")] = None,
    retry_invalid: Annotated[bool, typer.Option("--retry-invalid", help="Ask again pairs with an invalid answer.")] = False,
    max_invalid_share: MaxInvalidShare = 0.5,
    resamples: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals.")] = 1000,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    endpoint: Endpoint = None,
    model: Model = None,
    api_key_env: ApiKeyEnv = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", min=0.1, help="Seconds per model request.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, help="Model requests in flight at once.")] = None,
    retries: Annotated[Optional[int], typer.Option("--retries", min=0, help="Retries on 429/5xx/timeouts.")] = None,
    no_cache: NoCache = False,
    cache_path: CachePath = None,
    ray: Ray = None,
) -> None:
    """Evaluate judge configurations on a preference benchmark, forward and reversed.

    arrpo eval --dataset mjbench:data/mjbench --judge judges.yaml --out runs/mj --endpoint URL --model NAME

    Exit status: 0 done; 1 more than --max-invalid-share of a judge's answers are invalid (the
    report is written first); 2 a usage, configuration or dataset error.
    """
    from arrpo._sync import run_sync
    from arrpo.datasets import DatasetError, load_dataset
    from arrpo.errors import BadInputError
    from arrpo.eval.config import ConfigError, load_config
    from arrpo.eval.report import write_report
    from arrpo.eval.runner import EvalRunner, build_setups
    from arrpo.vlm.settings import open_backend

    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: is a file; --out names the run directory (created if missing)")
    if forward is not None and forward not in ("preferred_first", "given"):
        raise fail(f"--forward must be preferred_first or given (got {forward!r})")
    try:
        config = load_config(judge_config)
        loaded = load_dataset(dataset, images, _options(dataset_option or []), limit=limit, sample=sample,
                              skip_missing=skip_missing)
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
    pairs = loaded.pairs
    if not pairs:
        raise DatasetError(f"{dataset}: no pairs")
    overrides = {k: v for k, v in {
        "endpoint": endpoint, "model": model, "api_key_env": api_key_env, "timeout": timeout,
        "max_concurrency": concurrency, "max_retries": retries, "cache_path": cache_path,
    }.items() if v is not None}
    if no_cache:
        overrides["cache"] = False
    config = config.model_copy(update={"backend": config.backend.model_copy(update=overrides)})

    backends, opened = {}, {}
    for spec in config.judges:
        settings = config.backend_for(spec)
        key = settings.model_dump_json()
        if key not in opened:
            opened[key] = open_backend(settings)
        backends[spec.name] = opened[key]
    setups = build_setups(config, out, backends)

    pools = []
    if ray is not None:
        try:
            pools = _judge_on_ray(setups, config, ray)
        except Exception as exc:
            raise fail(f"cannot start judges on the Ray cluster at {ray!r}: {exc}") from None
    runner = EvalRunner(setups, out, forward=config.forward, max_pixels=config.max_pixels,
                        max_pending=max(config.backend_for(j).total_concurrency() for j in config.judges) * 2,
                        retry_invalid=retry_invalid)
    todo = sum(len(v) for v in runner.todo(pairs).values())
    say(f"{len(pairs)} pairs × {len(setups)} judge(s): {todo} to judge, "
        f"{len(pairs) * len(setups) - todo} already done in {out}")
    bar = None if no_progress or todo == 0 else _Bar(todo)
    info = {"dataset": dataset, "images": str(images) if images else None, "options": dataset_option or []}
    try:
        run_sync(runner.run(pairs, info=info, on_record=bar.advance if bar else None))
    finally:
        if bar:
            bar.close()
        for pool in pools:
            pool.shutdown()
        for backend in opened.values():
            with contextlib.suppress(Exception):
                run_sync(backend.aclose())
    written = write_report(out, resamples=resamples)
    _print_summary(out)
    say(f"report: {written['report.html']}")
    for setup in setups:
        _check_judge(out, setup.name, {p.id for p in pairs}, max_invalid_share)


def _check_judge(run_dir: Path, judge: str, ids: set[str], max_share: float) -> None:
    """Fail (exit 1) when more than ``max_share`` of a judge's order answers on these pairs are invalid."""
    from arrpo.eval.runner import latest_records, verdict_path

    records = [r for pid, r in latest_records(verdict_path(run_dir, judge)).items() if pid in ids]
    sides = [r[side] for r in records for side in ("forward", "reverse") if isinstance(r.get(side), dict)]
    reasons = [str(s.get("invalid_reason") or "no reason given") for s in sides if s.get("winner") == "invalid"]
    check_invalid_share(len(sides), reasons, max_share, f"answers of judge {judge!r}")


def _judge_on_ray(setups, config, address: str) -> list:
    """Give every judge setup a Ray actor pool (same backend settings and judge options)."""
    from arrpo.scale.ray_judge import RayPoolJudge
    from arrpo.scale.ray_runner import RayJudgeRunner, connect

    connect(address)
    pools = []
    for setup in setups:
        pool = RayPoolJudge(RayJudgeRunner(config.backend_for(setup.spec), setup.judge.settings))
        setup.judge = pool
        pools.append(pool)
    return pools


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by arrpo eval.")],
    resamples: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the 95% intervals.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
) -> None:
    """Write metrics.json, summary.md, plots and the self-contained report.html of a run."""
    from arrpo.eval.report import write_report

    written = write_report(run_dir, resamples=resamples, seed=seed)
    _print_summary(run_dir)
    for name in ("report.html", "summary.md", "metrics.json"):
        typer.echo(str(written[name]))


def _print_summary(run_dir: Path) -> None:
    """The summary table of a run (subset names come from the dataset: printed as plain text)."""
    say((run_dir / "summary.md").read_text(encoding="utf-8").split("\n\n![")[0], soft_wrap=True)


class _Bar:
    """Progress over (pair, judge) records, counting answers correct in each order and invalid ones."""

    def __init__(self, total: int):
        from arrpo.progress import CountingProgress

        self._bar = CountingProgress(total, "eval", ("fwd ok", "rev ok", "invalid"), console=console)

    def advance(self, judge: str, record: dict) -> None:
        outcomes = [name for name, side in (("fwd ok", "forward"), ("rev ok", "reverse")) if record[side]["correct"]]
        if "invalid" in (record["forward"]["winner"], record["reverse"]["winner"]):
            outcomes.append("invalid")
        self._bar.advance(*outcomes)

    def close(self) -> None:
        self._bar.close()
