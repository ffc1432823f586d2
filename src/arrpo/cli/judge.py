"""``arrpo judge``: judge one pair, or a whole pair file resumably."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from arrpo.cli._common import (
    MaxInvalidShare,
    Ray,
    cell,
    check_invalid_share,
    console,
    fail,
    say,
    terminal_text,
    with_judge_options,
    with_vlm_options,
)
from arrpo.judge_settings import JudgeSettings
from arrpo.vlm.settings import BackendSettings

if TYPE_CHECKING:
    from arrpo.rubric import Rubric


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_command)


@with_vlm_options()
@with_judge_options(JudgeSettings)
def judge_command(
    image_a: Annotated[Optional[Path], typer.Argument(help="First candidate image (A).")] = None,
    image_b: Annotated[Optional[Path], typer.Argument(help="Second candidate image (B).")] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="T2I prompt or edit instruction.")] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="Source image: makes it an editing pair.")] = None,
    rubric: Annotated[Optional[Path], typer.Option("--rubric", help="Rubric JSON file; none = direct judge.")] = None,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Batch mode: JSONL pair file.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Batch mode: verdicts JSONL (appended, resumable).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Batch mode: root for relative image paths.")] = None,
    retry_invalid: Annotated[bool, typer.Option("--retry-invalid", help="Batch mode: ask again pairs whose verdict was invalid.")] = False,
    max_invalid_share: MaxInvalidShare = 0.5,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Downscale images above this many pixels.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    ray: Ray = None,
    *,
    judge_settings: JudgeSettings,
    vlm: BackendSettings,
) -> None:
    """Judge which of two images is better for a prompt (optionally under a rubric).

    One pair:   arrpo judge A.png B.png --prompt "a red bicycle" --endpoint URL --model NAME

    Batch:      arrpo judge --pairs pairs.jsonl --out verdicts.jsonl --endpoint URL --model NAME

    Exit status: 0 done; 1 the verdict is invalid (one pair) or more than --max-invalid-share of
    the batch's verdicts are invalid; 2 a usage or input error.
    """
    batch = pairs is not None
    if batch and (image_a or image_b):
        raise fail("give either two images or --pairs, not both")
    if batch and out is None:
        raise fail("--pairs needs --out FILE for the verdicts")
    if not batch and (image_a is None or image_b is None or prompt is None):
        raise fail("give two images and --prompt (or --pairs FILE --out FILE for a batch)")
    if not batch and not (prompt or "").strip():
        raise fail("--prompt: the prompt is empty; give the T2I prompt or the edit instruction")
    if ray is not None and not batch:
        raise fail("--ray works with --pairs (batch mode)")
    settings = judge_settings
    loaded_rubric = _load_rubric(rubric)
    if batch:
        assert pairs is not None and out is not None
        _judge_batch(pairs, out, images, retry_invalid, max_invalid_share, max_pixels, ray, settings, loaded_rubric, vlm)
        return
    _judge_one(image_a, image_b, prompt or "", source, max_pixels, as_json, settings, loaded_rubric, vlm)  # type: ignore[arg-type]


def _load_rubric(path: Path | None):
    from arrpo.rubric import Rubric

    if path is None:
        return None
    try:
        return Rubric.load(path)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read rubric {path}: {exc}") from None


def _judge_one(image_a: Path, image_b: Path, prompt: str, source: Path | None, max_pixels: int | None,
               as_json: bool, settings: JudgeSettings, rubric: Rubric | None, vlm: BackendSettings) -> None:
    from arrpo.judge import PairwiseJudge
    from arrpo.vlm.settings import open_judge_backend

    comparison = _load_comparison(image_a, image_b, prompt, source, max_pixels)
    # after the inputs are checked (a local model takes long to load); the evidence-only judge opens none
    judge = PairwiseJudge(open_judge_backend(vlm, settings), settings, rubric=rubric)
    asyncio.run(_judge_and_print(judge, comparison, image_a, image_b, as_json))


def _load_comparison(image_a: Path, image_b: Path, prompt: str, source: Path | None, max_pixels: int | None):
    """The one pair to judge; an unusable image raises ImageError (exit 2, saying what is wrong)."""
    from arrpo.images import load_image
    from arrpo.schema import Comparison

    return Comparison(
        task="edit" if source else "t2i",
        prompt=prompt,
        image_a=load_image(image_a, max_pixels=max_pixels),
        image_b=load_image(image_b, max_pixels=max_pixels),
        source=load_image(source, max_pixels=max_pixels) if source else None,
        id="pair",
    )


async def _judge_and_print(judge, comparison, image_a: Path, image_b: Path, as_json: bool) -> None:
    try:
        verdict = await judge.judge(comparison)
    finally:
        if judge.backend is not None:  # the evidence-only judge opens none
            await judge.backend.aclose()
    if as_json:  # ensure_ascii=False then escaped: valid UTF-8 JSON whatever the model wrote
        typer.echo(terminal_text(json.dumps(verdict.model_dump(mode="json"), indent=2, ensure_ascii=False)))
    else:
        _print_verdict(verdict, image_a, image_b)
    if verdict.winner == "invalid":
        raise typer.Exit(1)


def _print_verdict(verdict, image_a: Path, image_b: Path) -> None:
    names = {"A": f"A ({image_a})", "B": f"B ({image_b})"}
    lines = []
    if verdict.winner in names:
        lines.append(f"winner: {names[verdict.winner]}")
    elif verdict.winner == "tie":
        lines.append("winner: tie (the two orders disagreed)" if verdict.orders_agree is False else "winner: tie")
    else:
        lines.append(f"winner: invalid — {verdict.invalid_reason}")
    for answer in verdict.answers:
        shown = "A first" if answer.order == "AB" else "B first"
        detail = answer.reason or answer.invalid_reason or ""
        lines.append(f"  [{shown}] {answer.winner}: {detail}")
    if verdict.evidence is not None:  # what OCR read beside each image, and what it decided
        from arrpo.evidence.block import reads_for_display

        lines += [f"  [{name}] {read}" for name, read in reads_for_display(verdict.evidence.ocr).items()]
        if verdict.evidence.unavailable:
            lines.append(f"  {verdict.evidence.unavailable}")
        elif verdict.evidence.decided_by == "evidence" and verdict.reason:
            lines.append(f"  evidence: {verdict.reason}")
    for line in lines:
        typer.echo(terminal_text(line))


def _judge_batch(pairs: Path, out: Path, images: Path | None, retry_invalid: bool, max_invalid_share: float,
                 max_pixels: int | None, ray: str | None, settings: JudgeSettings, rubric: Rubric | None,
                 vlm: BackendSettings) -> None:
    """Batch mode (:class:`arrpo.jobs.PairFileJob`): plan before the backend opens (a local model
    takes long to load), judge what is left, print the summary, fail on too many invalid verdicts."""
    from arrpo.jobs import PairFileJob, verdict_settings

    recorded = verdict_settings(settings, model=vlm.model, rubric=rubric, max_pixels=max_pixels)
    job = PairFileJob.plan(pairs, out, retry_invalid=retry_invalid, settings=recorded)
    if job.set_aside is not None:
        say(job.set_aside.message(f"the settings of {out}"))
    if not job.todo:
        say(f"all {len(job.ids)} pairs already judged in {out}")
        result = job.result()
    else:
        if job.done:
            say(f"resuming: {job.done} of {len(job.ids)} pairs already in {out}")
        judge, close = _open_judge(vlm, settings, rubric, ray)
        result = asyncio.run(_run_batch(job, judge, close, images, rubric, max_pixels,
                                        max(2 * vlm.total_concurrency(), 8)))
    _print_summary(out, result.latest)
    check_invalid_share(len(result.latest), result.invalid_reasons(), max_invalid_share, "verdicts")


def _open_judge(vlm: BackendSettings, settings: JudgeSettings, rubric: Rubric | None, ray: str | None):
    """The judge of a batch and how to close it: a local one, or an actor pool on a Ray cluster."""
    if ray is None:
        from arrpo.judge import PairwiseJudge
        from arrpo.vlm.settings import open_judge_backend

        judge = PairwiseJudge(open_judge_backend(vlm, settings), settings, rubric=rubric)

        async def close() -> None:
            if judge.backend is not None:  # the evidence-only judge opens none
                await judge.backend.aclose()

        return judge, close
    from arrpo.scale.ray_judge import RayPoolJudge
    from arrpo.scale.ray_runner import RayJudgeRunner, connect

    try:
        connect(ray)
    except ConnectionError as exc:
        raise fail(f"cannot reach the Ray cluster at {ray!r}: {exc}") from None
    pool = RayPoolJudge(RayJudgeRunner(vlm, settings, rubric=rubric))

    async def close() -> None:
        pool.shutdown()

    return pool, close


async def _run_batch(job, judge, close, images: Path | None, rubric, max_pixels: int | None, concurrency: int):
    from arrpo.judge import ProgressBar

    bar = ProgressBar(len(job.todo))
    try:
        return await job.run(judge, images=images, rubric=rubric, max_pixels=max_pixels, concurrency=concurrency,
                             on_verdict=bar.advance)
    finally:
        bar.close()
        await close()


def _print_summary(out: Path, latest: dict[str, dict]) -> None:
    from rich.table import Table

    counts = Counter(r.get("winner") for r in latest.values())
    both = [r for r in latest.values() if r.get("orders_agree") is not None]
    table = Table(title=cell(f"verdicts in {out}"))
    for name in ("pairs", "A", "B", "tie", "invalid", "orders agree"):
        table.add_column(name, justify="right")
    agree = f"{sum(bool(r['orders_agree']) for r in both) / len(both):.1%}" if both else "n/a"
    table.add_row(str(len(latest)), *(str(counts.get(k, 0)) for k in ("A", "B", "tie", "invalid")), agree)
    console.print(table)
    reasons = Counter(str(r.get("invalid_reason") or "")[:80] for r in latest.values() if r.get("winner") == "invalid")
    for reason, n in reasons.most_common(3):
        say(f"  invalid x{n}: {reason}")
