"""Resumable jobs: the one loop behind ``arrpo judge --pairs``, ``arrpo eval`` and ``arrpo rubric learn``.

A job works through items (pairs) and appends one record per finished item to JSON Lines files
(:class:`~arrpo.jsonl.JsonlWriter`: one fsynced line each), so a killed run loses at most the
items in flight. A rerun reads the newest record per id (:func:`~arrpo.jsonl.latest_by_id`) and
works only on the rest. :func:`run_items` is the loop:

* at most ``concurrency`` items are in flight; the next one starts when one finishes, so a long
  file never becomes a long list of waiting tasks;
* an exception while working on an item becomes that item's failure record (``failure(item, exc)``)
  and the run goes on;
* a *fatal* error cancels the items in flight and propagates: :class:`~arrpo.vlm.base.BackendUnavailable`
  (nothing usable is configured, so every item would fail the same way) or a record that cannot be
  written (a full disk). Every record written before it stays; the rerun resumes;
* progress is reported by callback; nothing here prints.

**Settings changed since the last run** — one rule for all three commands. The settings that
decide an item's record are kept with the records (``run.json`` of an eval run, the header line of
a learning state, ``OUT.settings.json`` beside a verdict file). When a rerun's settings differ, the
records made under the old ones are *set aside*: the file is renamed
``NAME.stale-YYYYmmdd-HHMMSS.jsonl`` (nothing is deleted), the run says what changed and where the
old records went, and the work is done again under the new settings. Old and new records are never
mixed, and a rerun is never refused for it (:func:`set_aside_if_changed`).

:func:`judge_pair_file` is ``arrpo judge --pairs`` as a library function: judge a pair file into a
resumable verdict file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from arrpo.datasets.pairs import PairFileError, PairRecord, read_pairs
from arrpo.errors import BadInputError
from arrpo.jsonl import JsonlWriter, latest_by_id
from arrpo.judge import judge_prompts_sha256
from arrpo.judge_settings import JudgeSettings
from arrpo.rubric import Rubric
from arrpo.schema import Verdict
from arrpo.vlm.base import BackendUnavailable

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Errors that end a whole run: a user must act before any item can succeed.
FATAL: tuple[type[BaseException], ...] = (BackendUnavailable,)


# ----------------------------------------------------------------------------- the loop
async def run_items(
    items: Iterable[Item],
    work: Callable[[Item], Awaitable[Result]],
    *,
    failure: Callable[[Item, Exception], Result],
    write: Callable[[Item, Result], None],
    on_done: Callable[[Item, Result], None] | None = None,
    concurrency: int = 8,
    fatal: tuple[type[BaseException], ...] = FATAL,
) -> int:
    """Work on every item, at most ``concurrency`` at once; returns the number of items finished.

    ``work(item)`` gives the item's result; an exception (other than ``fatal``) gives
    ``failure(item, exc)`` instead. ``write(item, result)`` appends its record(s) — in a worker
    thread, so an fsync never stalls the other items — and then ``on_done(item, result)`` reports
    it. A ``fatal`` error, an exception from ``write`` and a ``BaseException`` (a kill) cancel the
    items in flight and propagate; what was written stays written.
    """
    gate = asyncio.Semaphore(max(1, concurrency))
    stopped: list[BaseException] = []
    finished = 0

    async def one(item: Item) -> None:
        nonlocal finished
        try:
            try:
                result = await work(item)
            except fatal:
                raise
            except Exception as exc:  # one item's failure is that item's record, never the run's end
                result = failure(item, exc)
            await asyncio.to_thread(write, item, result)
            finished += 1
            if on_done is not None:
                on_done(item, result)
        except BaseException as exc:
            stopped.append(exc)
            raise
        finally:
            gate.release()

    tasks: list[asyncio.Task[None]] = []
    try:
        for item in items:
            await gate.acquire()
            if stopped:  # a fatal error: start nothing more
                gate.release()
                break
            tasks.append(asyncio.create_task(one(item)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:  # on a fatal error, stop the others before the caller closes its files
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return finished


# ------------------------------------------------------------- settings changed since the last run
@dataclass(frozen=True)
class SetAside:
    """Records moved out of the way because the settings they were made under changed."""

    path: Path
    moved_to: Path
    changes: tuple[str, ...]

    def message(self, what: str | None = None) -> str:
        """One line for the user: what changed, and where the old records are now."""
        return (f"{what or self.path} changed since the last run ({', '.join(self.changes)}): "
                f"its old records were set aside in {self.moved_to} and are done again")


def settings_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two settings records: ``name: old -> new`` (only ``name`` when a value
    is too long to show), in the order of ``current`` then names only ``recorded`` has."""
    names = [*current, *(k for k in recorded if k not in current)]
    changes = []
    for name in names:
        old, new = recorded.get(name), current.get(name)
        if old == new:
            continue
        shown = f"{old!r} -> {new!r}"
        changes.append(f"{name}: {shown}" if len(shown) <= 80 and not isinstance(new, (dict, list)) else name)
    return changes


def stale_path(path: str | Path) -> Path:
    """Where :func:`set_aside` moves ``path``: ``NAME.stale-YYYYmmdd-HHMMSS.SUFFIX`` beside it (a
    number is added when that name is taken)."""
    path = Path(path)
    stem, suffix = (path.name[: -len(path.suffix)], path.suffix) if path.suffix else (path.name, "")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, number = path.with_name(f"{stem}.stale-{stamp}{suffix}"), 1
    while candidate.exists():
        candidate, number = path.with_name(f"{stem}.stale-{stamp}-{number}{suffix}"), number + 1
    return candidate


def set_aside(path: str | Path, changes: Sequence[str]) -> SetAside:
    """Move a records file out of the way (renamed by :func:`stale_path`, never deleted)."""
    path = Path(path)
    target = stale_path(path)
    path.replace(target)
    return SetAside(path, target, tuple(changes))


def set_aside_if_changed(
    path: str | Path, recorded: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> SetAside | None:
    """The settings rule: set the records at ``path`` aside when the settings ``recorded`` with them
    differ from ``current``. Nothing happens when no records exist, or nothing was recorded
    (unknown settings cannot be compared: the records are resumed)."""
    path = Path(path)
    if recorded is None or not path.exists():
        return None
    changes = settings_changes(recorded, current)
    return set_aside(path, changes) if changes else None


# --------------------------------------------------------------------- arrpo judge --pairs
def verdict_settings(
    settings: JudgeSettings, *, model: str | None, rubric: Rubric | None = None, max_pixels: int | None = None
) -> dict[str, Any]:
    """What a verdict file records of the run that made it: the model, every judge setting (each
    field of :class:`~arrpo.judge_settings.JudgeSettings`, so a new one is recorded and compared
    too), the rubric text (as its hash), the judge prompt templates (hash) and the image size limit."""
    return {
        "model": model,
        **settings.model_dump(mode="json"),
        "rubric_sha256": hashlib.sha256(rubric.render().encode("utf-8")).hexdigest() if rubric else None,
        "prompts_sha256": judge_prompts_sha256(),
        "max_pixels": max_pixels,
    }


def settings_path(out: str | Path) -> Path:
    """The file beside a verdict file that records its settings (``OUT.settings.json``)."""
    out = Path(out)
    return out.with_name(out.name + ".settings.json")


@dataclass
class PairFileResult:
    """What a verdict file holds for the pairs of a pair file (the newest verdict of each)."""

    out: Path
    ids: list[str]
    latest: dict[str, dict[str, Any]]
    judged: int = 0
    resumed: int = 0
    set_aside: SetAside | None = None

    def invalid_reasons(self) -> list[str]:
        """The reason of every invalid verdict (``no reason given`` when it has none)."""
        return [str(r.get("invalid_reason") or "no reason given") for r in self.latest.values()
                if r.get("winner") == "invalid"]


@dataclass
class PairFileJob:
    """A checked batch: the pair file, the verdict file and the pairs still to judge.

    :meth:`plan` checks the files and applies the settings rule; :meth:`run` judges what is left.
    """

    pairs_path: Path
    out: Path
    ids: list[str]
    todo: list[PairRecord] = field(default_factory=list)
    done: int = 0
    set_aside: SetAside | None = None

    @classmethod
    def plan(cls, pairs_path: str | Path, out: str | Path, *, retry_invalid: bool = False,
             settings: Mapping[str, Any] | None = None) -> PairFileJob:
        """Check the pair and verdict files and list the pairs still to judge.

        ``settings`` (see :func:`verdict_settings`) are recorded beside ``out``; a verdict file made
        under other settings is set aside first. ``retry_invalid`` judges again pairs whose newest
        verdict is invalid.

        Raises :class:`~arrpo.errors.BadInputError` for an ``out`` that is the pair file or a
        directory, and :class:`~arrpo.datasets.pairs.PairFileError` for a missing, malformed or
        empty pair file (or one with a repeated id).
        """
        pairs_path, out = Path(pairs_path), Path(out)
        _check_out(pairs_path, out)
        records = list(read_pairs(pairs_path))
        if not records:
            raise PairFileError(f"{pairs_path}: no pairs in the file (it is empty)")
        moved = None
        if settings is not None:
            moved = set_aside_if_changed(out, _recorded_settings(out), settings)
            _write_settings(out, settings)
        latest = latest_by_id(out)
        done = {i for i, r in latest.items() if not (retry_invalid and r.get("winner") == "invalid")}
        todo = [p for p in records if p.id not in done]
        return cls(pairs_path, out, [p.id for p in records], todo, len(records) - len(todo), moved)

    def result(self, judged: int = 0) -> PairFileResult:
        """The newest verdict of every pair of the pair file."""
        wanted = set(self.ids)
        latest = latest_by_id(self.out, keep=lambda r: str(r.get("id")) in wanted)
        return PairFileResult(self.out, self.ids, latest, judged, self.done, self.set_aside)

    async def run(
        self,
        judge: Any,
        *,
        images: str | Path | None = None,
        rubric: Rubric | None = None,
        max_pixels: int | None = None,
        concurrency: int = 32,
        on_verdict: Callable[[Verdict], None] | None = None,
    ) -> PairFileResult:
        """Judge the pairs still to judge, appending each verdict as it finishes.

        ``judge`` is anything with ``async judge(comparison) -> Verdict`` (a
        :class:`~arrpo.judge.PairwiseJudge`, a :class:`~arrpo.scale.ray_judge.RayPoolJudge`).
        Image paths are relative to ``images`` (default: the pair file's folder). ``rubric`` goes
        on every comparison (default: the judge's own). A pair whose images cannot be used gets an
        ``invalid`` verdict saying ``bad input: ...``; any other exception a pair raises, its
        :meth:`~arrpo.schema.Verdict.failed` verdict. ``BackendUnavailable`` stops the run.
        """
        root = Path(images) if images is not None else self.pairs_path.parent
        rubric = rubric if rubric is not None else getattr(judge, "rubric", None)

        async def verdict_for(record: PairRecord) -> Verdict:
            try:
                comparison = await asyncio.to_thread(record.to_comparison, root, rubric=rubric, max_pixels=max_pixels)
            except ValueError as exc:  # ImageError included: the pair's images cannot be used
                return Verdict(id=record.id, winner="invalid", invalid_reason=f"bad input: {exc}")
            return await judge.judge(comparison)

        with JsonlWriter(self.out) as writer:
            judged = await run_items(
                self.todo, verdict_for,
                failure=lambda record, exc: Verdict.failed(exc, id=record.id),
                write=lambda _record, verdict: writer.write(verdict.model_dump(mode="json")),
                on_done=(lambda _record, verdict: on_verdict(verdict)) if on_verdict else None,
                concurrency=concurrency,
            )
        return self.result(judged)


async def judge_pair_file(
    judge: Any,
    pairs: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    rubric: Rubric | None = None,
    max_pixels: int | None = None,
    retry_invalid: bool = False,
    concurrency: int = 32,
    settings: Mapping[str, Any] | None = None,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> PairFileResult:
    """Judge a pair file into a resumable verdict file (``arrpo judge --pairs`` without the CLI).

    Pairs with a verdict in ``out`` are not asked again. ``settings`` default to the judge's own
    (:func:`verdict_settings` of a :class:`~arrpo.judge.PairwiseJudge`); a verdict file made under
    other settings is set aside (``result.set_aside``). See :meth:`PairFileJob.run` for the rest.
    """
    rubric = rubric if rubric is not None else getattr(judge, "rubric", None)
    if settings is None:
        settings = recorded_settings(judge, rubric=rubric, max_pixels=max_pixels)
    job = PairFileJob.plan(pairs, out, retry_invalid=retry_invalid, settings=settings)
    return await job.run(judge, images=images, rubric=rubric, max_pixels=max_pixels, concurrency=concurrency,
                         on_verdict=on_verdict)


def recorded_settings(judge: Any, *, rubric: Rubric | None = None, max_pixels: int | None = None) -> dict[str, Any] | None:
    """:func:`verdict_settings` of a judge that has the :class:`~arrpo.judge.PairwiseJudge` options
    and a backend; ``None`` for any other judge (its settings are unknown)."""
    settings = getattr(judge, "settings", None)
    if not isinstance(settings, JudgeSettings) or not hasattr(judge, "backend"):
        return None
    model = str(getattr(judge.backend, "model_id", "") or "").rsplit("#", 1)[-1] or None
    return verdict_settings(settings, model=model, rubric=rubric, max_pixels=max_pixels)


def _check_out(pairs_path: Path, out: Path) -> None:
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


def _recorded_settings(out: Path) -> dict[str, Any] | None:
    try:
        recorded = json.loads(settings_path(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _write_settings(out: Path, settings: Mapping[str, Any]) -> None:
    path = settings_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(settings), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
