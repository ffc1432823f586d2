"""``arrpo judge``: judge one pair, or a whole pair file resumably."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from arrpo.cli._common import (
    EvidenceOnlyOption,
    EvidenceOption,
    MaxAnswerChars,
    MaxInvalidShare,
    OcrPolicyOption,
    PromptLayoutOption,
    Ray,
    cell,
    check_invalid_share,
    console,
    fail,
    say,
    settings_from_options,
    terminal_text,
    with_vlm_options,
)
from arrpo.text import DEFAULT_MAX_ANSWER_CHARS
from arrpo.vlm.settings import BackendSettings
from arrpo.vocab import DisagreePolicy, OrderPolicy

if TYPE_CHECKING:
    from arrpo.judge_settings import JudgeSettings
    from arrpo.rubric import Rubric


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_command)


@with_vlm_options(local=True)
def judge_command(
    image_a: Annotated[Optional[Path], typer.Argument(help="First candidate image (A).")] = None,
    image_b: Annotated[Optional[Path], typer.Argument(help="Second candidate image (B).")] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="T2I prompt or edit instruction.")] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="Source image: makes it an editing pair.")] = None,
    rubric: Annotated[Optional[Path], typer.Option("--rubric", help="Rubric JSON file; none = direct judge.")] = None,
    order: Annotated[OrderPolicy, typer.Option("--order", help="Order policy: given | random | both.")] = "random",
    on_disagree: Annotated[DisagreePolicy, typer.Option("--on-disagree", help="With --order both: tie | invalid | first.")] = "tie",
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="Batch mode: JSONL pair file.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Batch mode: verdicts JSONL (appended, resumable).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Batch mode: root for relative image paths.")] = None,
    retry_invalid: Annotated[bool, typer.Option("--retry-invalid", help="Batch mode: ask again pairs whose verdict was invalid.")] = False,
    max_invalid_share: MaxInvalidShare = 0.5,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Downscale images above this many pixels.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=16, help="Longest answer the model may write.")] = 1024,
    max_answer_chars: MaxAnswerChars = DEFAULT_MAX_ANSWER_CHARS,
    prompt_layout: PromptLayoutOption = "authors",
    evidence: EvidenceOption = None,
    evidence_only: EvidenceOnlyOption = False,
    ocr_policy: OcrPolicyOption = "evidence",
    ray: Ray = None,
    *,
    vlm: BackendSettings,
) -> None:
    """Judge which of two images is better for a prompt (optionally under a rubric).

    One pair:   arrpo judge A.png B.png --prompt "a red bicycle" --endpoint URL --model NAME

    Batch:      arrpo judge --pairs pairs.jsonl --out verdicts.jsonl --endpoint URL --model NAME

    Exit status: 0 done; 1 the verdict is invalid (one pair) or more than --max-invalid-share of
    the batch's verdicts are invalid; 2 a usage or input error.
    """
    from arrpo.judge import PairwiseJudge
    from arrpo.judge_settings import JudgeSettings
    from arrpo.rubric import Rubric
    from arrpo.vlm.settings import open_backend

    batch = pairs is not None
    if batch and (image_a or image_b):
        raise fail("give either two images or --pairs, not both")
    if batch and out is None:
        raise fail("--pairs needs --out FILE for the verdicts")
    if not batch and (image_a is None or image_b is None or prompt is None):
        raise fail("give two images and --prompt (or --pairs FILE --out FILE for a batch)")
    if not batch and not (prompt or "").strip():
        raise fail("--prompt: the prompt is empty; give the T2I prompt or the edit instruction")

    loaded_rubric = None
    if rubric is not None:
        try:
            loaded_rubric = Rubric.load(rubric)
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read rubric {rubric}: {exc}") from None

    settings = settings_from_options(JudgeSettings, order=order, on_disagree=on_disagree, max_tokens=max_tokens,
                                     max_answer_chars=max_answer_chars, prompt_layout=prompt_layout,
                                     evidence=evidence or [], evidence_only=evidence_only, ocr_policy=ocr_policy)
    plan = None
    if batch:
        assert pairs is not None and out is not None
        plan = plan_batch(pairs, out, retry_invalid)
    if ray is not None:
        if plan is None:
            raise fail("--ray works with --pairs (batch mode)")
        _judge_batch_on_ray(vlm, settings, loaded_rubric, plan, images or plan.pairs_path.parent, max_pixels, ray)
        finish_batch(plan, max_invalid_share)
        return
    if plan is not None and not plan.todo:
        finish_batch(plan, max_invalid_share)
        return
    comparison = None if plan is not None else _load_comparison(image_a, image_b, prompt or "", source, max_pixels)
    opened = None if settings.evidence_only else open_backend(vlm)  # after the inputs are checked: a local model takes long to load
    judge = PairwiseJudge(opened, settings, rubric=loaded_rubric)

    if plan is not None:
        asyncio.run(_judge_batch(judge, plan, images or plan.pairs_path.parent, max_pixels, vlm.max_concurrency))
        finish_batch(plan, max_invalid_share)
        return
    asyncio.run(_judge_one(judge, comparison, image_a, image_b, as_json))  # type: ignore[arg-type]


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


async def _judge_one(judge, comparison, image_a: Path, image_b: Path, as_json: bool) -> None:
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


@dataclass
class BatchPlan:
    """A checked batch: the pair file, the verdict file and the pairs still to judge."""

    pairs_path: Path
    out: Path
    ids: list[str]
    todo: list = field(default_factory=list)
    done: int = 0


def plan_batch(pairs_path: Path, out: Path, retry_invalid: bool) -> BatchPlan:
    """Check the pair and verdict files and list the pairs still to judge.

    Raises :class:`arrpo.errors.BadInputError` (exit 2) for an ``--out`` that is the pair file or
    a directory, and :class:`arrpo.datasets.pairs.PairFileError` for a missing, malformed or empty pair
    file (or one with a repeated id).
    """
    from arrpo.datasets.pairs import PairFileError, read_pairs
    from arrpo.errors import BadInputError
    from arrpo.jsonl import iter_records

    if out.parent.exists() and not out.parent.is_dir():
        raise BadInputError(f"--out {out}: {out.parent} is not a directory")
    if out.exists() and not out.is_file():
        raise BadInputError(f"--out {out}: is a directory, not a file; give the verdict file's path"
                            if out.is_dir() else f"--out {out}: not a regular file")
    same = out.resolve() == pairs_path.resolve() or (
        out.exists() and pairs_path.exists() and os.path.samefile(out, pairs_path)
    )
    if same:
        raise BadInputError(f"--out {out} is the pair file itself; write the verdicts to another file")
    records = list(read_pairs(pairs_path))
    if not records:
        raise PairFileError(f"{pairs_path}: no pairs in the file (it is empty)")
    latest = {str(r["id"]): r.get("winner") for r in iter_records(out) if r.get("id") is not None}
    done = {i for i, w in latest.items() if not (retry_invalid and w == "invalid")}
    todo = [p for p in records if p.id not in done]
    return BatchPlan(pairs_path, out, [p.id for p in records], todo, len(records) - len(todo))


def finish_batch(plan: BatchPlan, max_invalid_share: float) -> None:
    """Print the summary; raise :class:`RunFailedError` (exit 1) when too many verdicts are invalid."""
    from arrpo.jsonl import iter_records

    wanted = set(plan.ids)
    latest = {str(r["id"]): r for r in iter_records(plan.out) if str(r.get("id")) in wanted}
    if not plan.todo:
        say(f"all {len(plan.ids)} pairs already judged in {plan.out}")
    _print_summary(plan.out, latest)
    reasons = [str(r.get("invalid_reason") or "no reason given") for r in latest.values() if r.get("winner") == "invalid"]
    check_invalid_share(len(latest), reasons, max_invalid_share, "verdicts")


async def _judge_batch(judge, plan: BatchPlan, images_root: Path, max_pixels: int | None, concurrency: int) -> None:
    from arrpo.jsonl import JsonlWriter
    from arrpo.judge import ProgressBar
    from arrpo.schema import Verdict
    from arrpo.vlm import BackendUnavailable

    if plan.done:
        say(f"resuming: {plan.done} of {len(plan.ids)} pairs already in {plan.out}")
    gate = asyncio.Semaphore(max(2 * concurrency, 8))
    bar = ProgressBar(len(plan.todo))
    writer = JsonlWriter(plan.out)

    async def verdict_for(record) -> Verdict:
        try:
            comparison = await asyncio.to_thread(
                record.to_comparison, images_root, rubric=judge.rubric, max_pixels=max_pixels
            )
        except ValueError as exc:  # ImageError included
            return Verdict(id=record.id, winner="invalid", invalid_reason=f"bad input: {exc}")
        return await judge.judge(comparison)

    async def one(record) -> None:
        try:
            try:
                verdict = await verdict_for(record)
            except BackendUnavailable:
                raise  # no backend at all: every pair would fail the same way
            except Exception as exc:  # one pair's failure, whatever it is, is that pair's verdict
                verdict = failed_verdict(record.id, exc)
            write_verdict(writer, verdict)
            bar.advance(verdict)
        finally:
            gate.release()

    tasks: list[asyncio.Task] = []
    try:
        for record in plan.todo:
            await gate.acquire()
            tasks.append(asyncio.create_task(one(record)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bar.close()
        writer.close()
        if judge.backend is not None:
            await judge.backend.aclose()


def failed_verdict(pair_id: str, exc: BaseException):
    """The ``invalid`` verdict of a pair whose judging raised ``exc``."""
    from arrpo.schema import Verdict

    return Verdict(id=pair_id, winner="invalid", invalid_reason=f"failed: {type(exc).__name__}: {exc}"[:2000])


def write_verdict(writer, verdict) -> None:
    """Append a verdict; one that cannot be written is recorded as an invalid verdict instead."""
    try:
        writer.write(verdict.model_dump(mode="json"))
    except Exception as exc:
        writer.write(failed_verdict(verdict.id, exc).model_dump(mode="json"))


def _judge_batch_on_ray(backend: BackendSettings, settings: JudgeSettings, rubric: Rubric | None, plan: BatchPlan,
                        images_root: Path, max_pixels: int | None, address: str) -> None:
    """Batch mode on a Ray cluster: same pair file, same resumable verdict file."""
    from arrpo.jsonl import JsonlWriter
    from arrpo.judge import ProgressBar
    from arrpo.scale.ray_runner import judge_on_ray
    from arrpo.schema import Verdict

    if plan.done:
        say(f"resuming: {plan.done} of {len(plan.ids)} pairs already in {plan.out}")
    bar = ProgressBar(len(plan.todo))
    with JsonlWriter(plan.out) as writer:
        comparisons = []
        for record in plan.todo:
            try:
                comparisons.append(record.to_comparison(images_root, rubric=rubric, max_pixels=max_pixels))
            except ValueError as exc:  # ImageError included
                verdict = Verdict(id=record.id, winner="invalid", invalid_reason=f"bad input: {exc}")
                write_verdict(writer, verdict)
                bar.advance(verdict)
        try:
            for _, verdict in judge_on_ray(comparisons, backend, settings, rubric=rubric, address=address):
                write_verdict(writer, verdict)
                bar.advance(verdict)
        except ConnectionError as exc:
            raise fail(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
        finally:
            bar.close()


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
