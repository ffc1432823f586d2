"""``arrpo judge``: judge one pair, or a whole pair file resumably."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer

from arrpo.cli._common import (
    ApiKeyEnv,
    BackendKind,
    CachePath,
    Concurrency,
    Device,
    Endpoint,
    Model,
    NoCache,
    Ray,
    Retries,
    Timeout,
    backend_settings,
    console,
    fail,
)


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_command)


def judge_command(
    image_a: Annotated[Optional[Path], typer.Argument(help="First candidate image (A).")] = None,
    image_b: Annotated[Optional[Path], typer.Argument(help="Second candidate image (B).")] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="T2I prompt or edit instruction.")] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="Source image: makes it an editing pair.")] = None,
    rubric: Annotated[Optional[Path], typer.Option("--rubric", help="Rubric JSON file; none = direct judge.")] = None,
    order: Annotated[str, typer.Option("--order", help="Order policy: given | random | both.")] = "random",
    on_disagree: Annotated[str, typer.Option("--on-disagree", help="With --order both: tie | invalid | first.")] = "tie",
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Batch mode: JSONL pair file.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Batch mode: verdicts JSONL (appended, resumable).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Batch mode: root for relative image paths.")] = None,
    retry_invalid: Annotated[bool, typer.Option("--retry-invalid", help="Batch mode: ask again pairs whose verdict was invalid.")] = False,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", help="Downscale images above this many pixels.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=16, help="Longest answer the model may write.")] = 1024,
    endpoint: Endpoint = None,
    model: Model = None,
    api_key_env: ApiKeyEnv = None,
    timeout: Timeout = 120.0,
    concurrency: Concurrency = 16,
    retries: Retries = 4,
    no_cache: NoCache = False,
    cache_path: CachePath = None,
    backend: BackendKind = "auto",
    device: Device = "auto",
    ray: Ray = None,
) -> None:
    """Judge which of two images is better for a prompt (optionally under a rubric).

    One pair:   arrpo judge A.png B.png --prompt "a red bicycle" --endpoint URL --model NAME

    Batch:      arrpo judge --pairs pairs.jsonl --out verdicts.jsonl --endpoint URL --model NAME
    """
    from arrpo.judge import PairwiseJudge
    from arrpo.rubric import Rubric
    from arrpo.vlm import BackendUnavailable
    from arrpo.vlm.settings import open_backend

    if order not in ("given", "random", "both"):
        raise fail(f"--order must be given, random or both (got {order!r})")
    if on_disagree not in ("tie", "invalid", "first"):
        raise fail(f"--on-disagree must be tie, invalid or first (got {on_disagree!r})")
    batch = pairs is not None
    if batch and (image_a or image_b):
        raise fail("give either two images or --pairs, not both")
    if batch and out is None:
        raise fail("--pairs needs --out FILE for the verdicts")
    if not batch and (image_a is None or image_b is None or not prompt):
        raise fail("give two images and --prompt (or --pairs FILE --out FILE for a batch)")

    loaded_rubric = None
    if rubric is not None:
        try:
            loaded_rubric = Rubric.load(rubric)
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read rubric {rubric}: {exc}") from None

    settings = backend_settings(endpoint, model, api_key_env, timeout, concurrency, retries, no_cache, cache_path,
                                backend, device)
    if ray is not None:
        if not batch:
            raise fail("--ray works with --pairs (batch mode)")
        assert pairs is not None and out is not None
        options = {"order": order, "on_disagree": on_disagree, "rubric": loaded_rubric, "max_tokens": max_tokens}
        _judge_batch_on_ray(settings, options, pairs, out, images or pairs.parent, retry_invalid, max_pixels, ray)
        return
    try:
        backend = open_backend(settings)
    except BackendUnavailable as exc:
        raise fail(str(exc)) from None
    judge = PairwiseJudge(backend, order=order, on_disagree=on_disagree, rubric=loaded_rubric,  # type: ignore[arg-type]
                          max_tokens=max_tokens)

    if batch:
        assert pairs is not None and out is not None
        asyncio.run(_judge_batch(judge, pairs, out, images or pairs.parent, retry_invalid, max_pixels, concurrency))
        return
    asyncio.run(_judge_one(judge, image_a, image_b, prompt or "", source, max_pixels, as_json))  # type: ignore[arg-type]


async def _judge_one(judge, image_a: Path, image_b: Path, prompt: str, source: Path | None,
                     max_pixels: int | None, as_json: bool) -> None:
    from arrpo.images import ImageError, load_image
    from arrpo.schema import Comparison

    try:
        comparison = Comparison(
            task="edit" if source else "t2i",
            prompt=prompt,
            image_a=load_image(image_a, max_pixels=max_pixels),
            image_b=load_image(image_b, max_pixels=max_pixels),
            source=load_image(source, max_pixels=max_pixels) if source else None,
            id="pair",
        )
    except ImageError as exc:
        raise fail(str(exc)) from None
    try:
        verdict = await judge.judge(comparison)
    finally:
        await judge.backend.aclose()
    if as_json:
        typer.echo(verdict.model_dump_json(indent=2))
    else:
        _print_verdict(verdict, image_a, image_b)
    if verdict.winner == "invalid":
        raise typer.Exit(1)


def _print_verdict(verdict, image_a: Path, image_b: Path) -> None:
    names = {"A": f"A ({image_a})", "B": f"B ({image_b})"}
    if verdict.winner in names:
        typer.echo(f"winner: {names[verdict.winner]}")
    elif verdict.winner == "tie":
        typer.echo("winner: tie (the two orders disagreed)" if verdict.orders_agree is False else "winner: tie")
    else:
        typer.echo(f"winner: invalid — {verdict.invalid_reason}")
    for answer in verdict.answers:
        shown = "A first" if answer.order == "AB" else "B first"
        detail = answer.reason or answer.invalid_reason or ""
        typer.echo(f"  [{shown}] {answer.winner}: {detail}")


async def _judge_batch(judge, pairs_path: Path, out: Path, images_root: Path, retry_invalid: bool,
                       max_pixels: int | None, concurrency: int) -> None:
    from arrpo.images import ImageError
    from arrpo.jsonl import JsonlWriter, iter_records
    from arrpo.judge import ProgressBar
    from arrpo.pairs import PairFileError, read_pairs
    from arrpo.schema import Verdict

    latest = {str(r["id"]): r.get("winner") for r in iter_records(out) if r.get("id") is not None}
    done = {i for i, w in latest.items() if not (retry_invalid and w == "invalid")}
    try:
        todo = [p for p in read_pairs(pairs_path) if p.id not in done]
        total = len(todo) + len(done)
    except (OSError, PairFileError) as exc:
        raise fail(str(exc)) from None
    if not todo:
        console.print(f"all {total} pairs already judged in {out}")
        _print_summary(out)
        return
    if done:
        console.print(f"resuming: {len(done)} of {total} pairs already in {out}")
    gate = asyncio.Semaphore(max(2 * concurrency, 8))
    bar = ProgressBar(len(todo))
    writer = JsonlWriter(out)

    async def one(record) -> None:
        try:
            try:
                comparison = await asyncio.to_thread(
                    record.to_comparison, images_root, rubric=judge.rubric, max_pixels=max_pixels
                )
            except (ImageError, ValueError) as exc:
                verdict = Verdict(id=record.id, winner="invalid", invalid_reason=f"bad input: {exc}")
            else:
                verdict = await judge.judge(comparison)
            await asyncio.to_thread(writer.write, verdict.model_dump(mode="json"))
            bar.advance(verdict)
        finally:
            gate.release()

    tasks = []
    try:
        for record in todo:
            await gate.acquire()
            tasks.append(asyncio.create_task(one(record)))
        await asyncio.gather(*tasks)
    finally:
        bar.close()
        writer.close()
        await judge.backend.aclose()
    _print_summary(out)


def _judge_batch_on_ray(settings, options: dict, pairs_path: Path, out: Path, images_root: Path,
                        retry_invalid: bool, max_pixels: int | None, address: str) -> None:
    """Batch mode on a Ray cluster: same pair file, same resumable verdict file."""
    from arrpo.images import ImageError
    from arrpo.jsonl import JsonlWriter, iter_records
    from arrpo.judge import ProgressBar
    from arrpo.pairs import PairFileError, read_pairs
    from arrpo.scale.ray_runner import judge_on_ray
    from arrpo.schema import Verdict
    from arrpo.vlm import BackendUnavailable

    latest = {str(r["id"]): r.get("winner") for r in iter_records(out) if r.get("id") is not None}
    done = {i for i, w in latest.items() if not (retry_invalid and w == "invalid")}
    try:
        todo = [p for p in read_pairs(pairs_path) if p.id not in done]
    except (OSError, PairFileError) as exc:
        raise fail(str(exc)) from None
    if done:
        console.print(f"resuming: {len(done)} of {len(todo) + len(done)} pairs already in {out}")
    bar = ProgressBar(len(todo))
    with JsonlWriter(out) as writer:
        comparisons = []
        for record in todo:
            try:
                comparisons.append(record.to_comparison(images_root, rubric=options["rubric"], max_pixels=max_pixels))
            except (ImageError, ValueError) as exc:
                verdict = Verdict(id=record.id, winner="invalid", invalid_reason=f"bad input: {exc}")
                writer.write(verdict.model_dump(mode="json"))
                bar.advance(verdict)
        try:
            for _, verdict in judge_on_ray(comparisons, settings, options, address=address):
                writer.write(verdict.model_dump(mode="json"))
                bar.advance(verdict)
        except BackendUnavailable as exc:
            bar.close()
            raise fail(str(exc)) from None
        except ConnectionError as exc:
            bar.close()
            raise fail(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    bar.close()
    _print_summary(out)


def _print_summary(out: Path) -> None:
    from rich.table import Table

    from arrpo.jsonl import iter_records

    latest = {str(r["id"]): r for r in iter_records(out) if r.get("id") is not None}
    counts = Counter(r.get("winner") for r in latest.values())
    both = [r for r in latest.values() if r.get("orders_agree") is not None]
    table = Table(title=f"verdicts in {out}")
    for name in ("pairs", "A", "B", "tie", "invalid", "orders agree"):
        table.add_column(name, justify="right")
    agree = f"{sum(r['orders_agree'] for r in both) / len(both):.1%}" if both else "n/a"
    table.add_row(str(len(latest)), *(str(counts.get(k, 0)) for k in ("A", "B", "tie", "invalid")), agree)
    console.print(table)
    reasons = Counter((r.get("invalid_reason") or "")[:80] for r in latest.values() if r.get("winner") == "invalid")
    for reason, n in reasons.most_common(3):
        console.print(f"  invalid x{n}: {reason}", highlight=False, markup=False)
