"""Run judge configurations over a dataset in both orders, resumably.

Every pair is judged twice per configuration: *forward* and *reverse*, one answer per order
(:func:`arrpo.judge.judge_in_orders` asks both). By default forward shows the human-preferred image
as Image 1 (``forward: preferred_first``), so Δ = forward − reverse accuracy measures position bias
on any dataset; ``forward: given`` uses the dataset's A/B order instead. Ties in the label are shown
in the dataset's order.

The run directory (:class:`arrpo.eval.rundir.RunDir`) holds everything a report needs: ``run.json``,
``pairs.jsonl``, one :class:`~arrpo.eval.rundir.EvalRecord` per judged pair in
``verdicts/<judge>.jsonl``, ``thumbs/`` and ``rubrics/<judge>/``.

Killed runs resume (:mod:`arrpo.jobs`): pairs with a record in ``verdicts/<judge>.jsonl`` are not
asked again (``retry_invalid`` asks again those with an invalid answer; a pair whose label changed
since is asked again too; the newest line wins). A judge whose settings changed since the run was
started (its configuration, rubric text, the judge prompt templates — ``judge.j2``,
``judge_retry.j2`` and ``ocr_evidence.j2`` — or the forward order) has its old records set aside and
is judged again.

A judge with OCR evidence (``evidence: [ocr]``) keeps the pair's evidence once per record
(:class:`~arrpo.eval.rundir.PairEvidence`) and, per order, whose winner it is (``decided_by``) and
the policy's outcome. An evidence-only judge opens no backend: it needs no endpoint, and with
``ray`` it still runs in this process (it asks no model; OCR runs here).

:func:`evaluate` is ``arrpo eval`` as a library function: backends, Ray pools, the run and the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrpo._version import __version__
from arrpo.datasets.pairs import PreferencePair
from arrpo.eval.config import EvalConfig, JudgeSpec
from arrpo.eval.providers import RubricSource, RubricUnavailable, build_source
from arrpo.eval.report import Report, write_report
from arrpo.eval.rundir import EvalRecord, OrderOutcome, PairEvidence, RunDir
from arrpo.html.thumbs import save_thumbnail
from arrpo.images import ImageData, ImageError
from arrpo.jobs import SetAside, run_items, set_aside_if_changed
from arrpo.jsonl import JsonlWriter
from arrpo.judge import (
    JUDGE_TEMPLATES,
    AsksOrders,
    PairwiseJudge,
    identical_images,
    judge_in_orders,
    judge_prompts_sha256,
)
from arrpo.schema import FAILED_PREFIX, Comparison, Order, OrderAnswer
from arrpo.text import exception_text
from arrpo.vlm.base import BackendUnavailable
from arrpo.vlm.wrappers import counting_retries


@dataclass
class JudgeSetup:
    """A judge configuration ready to run: its spec, judge and rubric source, and for a judge with
    OCR evidence the in-process judge that gathers a pair's evidence for its record (the judge
    itself, unless that runs on Ray: evidence is then read here too)."""

    spec: JudgeSpec
    judge: Any  # anything with ``async ask(comparison, order) -> OrderAnswer`` (a PairwiseJudge, a RayPoolJudge)
    rubrics: RubricSource
    evidence: PairwiseJudge | None = None

    @property
    def name(self) -> str:
        return self.spec.name


def is_stale(record: EvalRecord, pair: PreferencePair) -> bool:
    """Whether a record was made for another version of the pair (its label or task changed, e.g.
    a rerun with another A/B randomisation seed): its answers do not describe this pair."""
    return record.label != pair.label or record.task != pair.task


def forward_shows_b_first(pair: PreferencePair, forward: str) -> bool:
    """Whether the forward order shows B as Image 1 (preferred-first forward with a B label)."""
    return forward == "preferred_first" and pair.label == "B"


def order_outcome(answer: OrderAnswer, *, shown_first: str, label: str, retries: int = 0,
                  evidence: PairEvidence | None = None, evidence_only: bool = False) -> OrderOutcome:
    """One order's answer as a record's outcome; ``retries``: the HTTP retries its calls needed.

    With the pair's ``evidence`` (a judge with OCR evidence) the outcome says whose winner it is
    and keeps the policy's outcome; without, it has neither field."""
    attempts, cached = answer.attempts, answer.cached
    decided_by = None
    if evidence is not None:
        decided_by = "evidence" if evidence_only else (answer.policy.decided_by if answer.policy else "vlm")
    return OrderOutcome(
        shown_first=shown_first,  # type: ignore[arg-type]
        winner=answer.winner,
        correct=answer.winner == label,
        reason=answer.reason or None,
        raw=answer.raw,
        invalid_reason=answer.invalid_reason if answer.winner == "invalid" else None,
        latency_s=round(answer.latency_s, 4),
        attempts=attempts,
        cached=cached,
        calls=attempts - cached + retries,
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        decided_by=decided_by,  # type: ignore[arg-type]
        policy=answer.policy if evidence is not None else None,
    )


class _RetryCounter:
    """Asks through a judge, counting per order the HTTP retries its model calls needed."""

    def __init__(self, judge: AsksOrders):
        self.judge = judge
        self.retries: dict[Order, int] = {}

    async def ask(self, comparison: Comparison, order: Order) -> OrderAnswer:
        with counting_retries() as tally:
            answer = await self.judge.ask(comparison, order)
        self.retries[order] = tally.retries
        return answer


class EvalRunner:
    """Judge pairs with several judge configurations, forward and reverse, appending records."""

    def __init__(self, setups: Sequence[JudgeSetup], run_dir: str | Path | RunDir, *, forward: str = "preferred_first",
                 max_pixels: int | None = None, max_pending: int = 32, retry_invalid: bool = False):
        if forward not in ("preferred_first", "given"):
            raise ValueError("forward must be 'preferred_first' or 'given'")
        self.setups = list(setups)
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.forward = forward
        self.max_pixels = max_pixels
        self.max_pending = max(1, max_pending)
        self.retry_invalid = retry_invalid

    # ------------------------------------------------------------------ planning
    def todo(self, pairs: Sequence[PreferencePair]) -> dict[str, list[str]]:
        """Pair ids → names of the judges that still have to judge them."""
        remaining: dict[str, list[str]] = {}
        for setup in self.setups:
            done = self.run_dir.records(setup.name)
            for pair in pairs:
                record = done.get(pair.id)
                if record is None or is_stale(record, pair) or (self.retry_invalid and record.invalid):
                    remaining.setdefault(pair.id, []).append(setup.name)
        return remaining

    def write_manifest(self, pairs: Sequence[PreferencePair], info: Mapping[str, Any]) -> None:
        self.run_dir.root.mkdir(parents=True, exist_ok=True)
        manifest = self.run_dir.manifest
        tmp = manifest.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for pair in pairs:
                handle.write(json.dumps(pair.manifest(), ensure_ascii=False) + "\n")
        tmp.replace(manifest)
        run = {
            "arrpo_version": __version__,
            "forward": self.forward,
            "pairs": len(pairs),
            "judges": [judge_identity(s) for s in self.setups],
            "rubrics": {s.name: _rubric_texts(s.rubrics) for s in self.setups},
            **info,
        }
        self.run_dir.run_json.write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def set_aside_changed(self) -> list[SetAside]:
        """The changed-settings rule (:mod:`arrpo.jobs`): set aside the records of every judge whose
        settings changed since the run was started under its name.

        Records of a judge are only comparable if they came from one configuration: the same spec
        (kind, rubric files, sampling), the same judge prompt templates (``prompts_sha256``), the
        same rubric text and the same forward order, as recorded in ``run.json``.
        """
        before = self.run_dir.info()
        if before is None:
            return []
        specs = {j.get("name"): j for j in before.get("judges", []) if isinstance(j, dict)}
        moved = []
        for setup in self.setups:
            recorded = None
            if setup.name in specs:
                old = dict(specs[setup.name])
                old_prompts = old.pop("prompts_sha256", None)
                recorded = _settings(_normalised_spec(old), old_prompts, before.get("rubrics", {}).get(setup.name),
                                     before.get("forward"))
            current = _settings(setup.spec.model_dump(mode="json"), judge_prompts_sha256(),
                                _rubric_texts(setup.rubrics), self.forward)
            aside = set_aside_if_changed(self.run_dir.verdicts(setup.name), recorded, current)
            if aside is not None:
                moved.append(aside)
        return moved

    # ------------------------------------------------------------------- running
    async def run(
        self,
        pairs: Sequence[PreferencePair],
        *,
        info: Mapping[str, Any] | None = None,
        on_start: Callable[[int], None] | None = None,
        on_record: Callable[[str, EvalRecord], None] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> int:
        """Judge what is left to judge; returns the number of records written.

        ``on_start(records to write)`` is called once the plan is known, ``on_record(judge,
        record)`` as each record is written, ``on_note(text)`` for what the user should know
        (judges whose old records were set aside).
        """
        for setup in self.setups:
            setup.rubrics.check_tasks({p.task for p in pairs})
        for aside in self.set_aside_changed():
            if on_note is not None:
                on_note(aside.message(f"judge {aside.path.stem!r}"))
        self.write_manifest(pairs, info or {})
        remaining = self.todo(pairs)
        if on_start is not None:
            on_start(sum(len(names) for names in remaining.values()))
        by_id = {p.id: p for p in pairs}
        writers = {s.name: JsonlWriter(self.run_dir.verdicts(s.name)) for s in self.setups}
        written = 0

        async def judge_item(item: tuple[str, list[str]]) -> list[EvalRecord]:
            pair_id, names = item
            pair = by_id[pair_id]
            loaded = await asyncio.to_thread(self._load, pair)
            return [await self.judge_pair(setup, pair, loaded) for setup in self.setups if setup.name in names]

        def failure(item: tuple[str, list[str]], exc: Exception) -> list[EvalRecord]:
            pair, error = by_id[item[0]], f"{FAILED_PREFIX}{exception_text(exc)}"
            return [self.error_record(s, pair, {}, error, time.perf_counter()) for s in self.setups if s.name in item[1]]

        def write(_item: tuple[str, list[str]], records: list[EvalRecord]) -> None:
            for record in records:
                writers[record.judge].write(record.to_json())

        def done(_item: tuple[str, list[str]], records: list[EvalRecord]) -> None:
            nonlocal written
            written += len(records)
            for record in records:
                if on_record is not None:
                    on_record(record.judge, record)

        started = time.perf_counter()
        try:
            await run_items(list(remaining.items()), judge_item, failure=failure, write=write, on_done=done,
                            concurrency=self.max_pending)
        finally:
            for writer in writers.values():
                writer.close()
            self._log_session(written, time.perf_counter() - started)
        return written

    def _load(self, pair: PreferencePair) -> dict[str, Any]:
        """Images and thumbnails of a pair; an ``error`` entry when an image cannot be used."""
        try:
            images: dict[str, ImageData | None] = {
                "a": pair.image_a.load(self.max_pixels),
                "b": pair.image_b.load(self.max_pixels),
                "source": pair.source.load(self.max_pixels) if pair.source else None,
            }
        except ImageError as exc:
            return {"error": f"image error: {exc}", "thumbs": {}}
        names = {k: save_thumbnail(v, self.run_dir.thumbs) for k, v in images.items() if v is not None}
        return {"images": images, "thumbs": names}

    async def judge_pair(self, setup: JudgeSetup, pair: PreferencePair, loaded: dict[str, Any]) -> EvalRecord:
        """Both orders of one pair under one judge configuration, as a record."""
        started = time.perf_counter()
        error, rubric, rubric_key = loaded.get("error"), None, None
        if error is None:
            try:
                rubric, rubric_key = await setup.rubrics.rubric_for(pair)
            except RubricUnavailable as exc:
                error = f"no rubric: {exc}"
        if error is not None:
            return self.error_record(setup, pair, loaded, error, started, rubric_key)
        images = loaded["images"]
        comparison = Comparison(
            id=pair.id, task=pair.task, prompt=pair.prompt, image_a=images["a"], image_b=images["b"],
            source=images["source"], rubric=rubric,
        )
        b_first = forward_shows_b_first(pair, self.forward)
        orders: tuple[Order, Order] = ("BA", "AB") if b_first else ("AB", "BA")
        counter = _RetryCounter(setup.judge)
        forward, reverse = (await judge_in_orders(counter, comparison, orders)).answers
        evidence = await pair_evidence(setup, comparison)
        only = setup.spec.evidence_only

        def outcome(answer: OrderAnswer, order: Order) -> OrderOutcome:
            return order_outcome(answer, shown_first=order[0], label=pair.label, retries=counter.retries[order],
                                 evidence=evidence, evidence_only=only)

        return EvalRecord(
            id=pair.id, judge=setup.name, subset=pair.subset, label=pair.label, task=pair.task,
            thumbs=loaded.get("thumbs", {}), rubric_key=rubric_key,
            forward=outcome(forward, orders[0]), reverse=outcome(reverse, orders[1]),
            wall_s=round(time.perf_counter() - started, 4), evidence=evidence,
        )

    def error_record(self, setup: JudgeSetup, pair: PreferencePair, loaded: dict[str, Any], error: str,
                     started: float, rubric_key: str | None = None) -> EvalRecord:
        """The record of a pair that could not be judged: both orders invalid, ``error`` saying why."""
        fwd_first, rev_first = ("B", "A") if forward_shows_b_first(pair, self.forward) else ("A", "B")
        return EvalRecord(
            id=pair.id, judge=setup.name, subset=pair.subset, label=pair.label, task=pair.task,
            thumbs=loaded.get("thumbs", {}), rubric_key=rubric_key, error=error,
            forward=OrderOutcome(shown_first=fwd_first, winner="invalid", correct=False, invalid_reason=error),  # type: ignore[arg-type]
            reverse=OrderOutcome(shown_first=rev_first, winner="invalid", correct=False, invalid_reason=error),  # type: ignore[arg-type]
            wall_s=round(time.perf_counter() - started, 4),
        )

    def _log_session(self, written: int, wall_s: float) -> None:
        with JsonlWriter(self.run_dir.sessions, fsync=False) as writer:
            writer.write({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "records": written,
                          "wall_s": round(wall_s, 3), "arrpo_version": __version__})


async def pair_evidence(setup: JudgeSetup, comparison: Comparison) -> PairEvidence | None:
    """The evidence of a pair for its record: ``None`` for a judge without evidence and for two
    identical images (a tie, nothing read). Gathered once: the judge's orders already read the
    images, so this costs nothing but under Ray, where the reads are made here as well."""
    if setup.evidence is None or identical_images(comparison):
        return None
    gathered = await setup.evidence.gather_evidence(comparison)
    return PairEvidence.of(gathered) if gathered is not None else None


#: How the changed-settings message names the templates a judge's ``prompts_sha256`` covers.
TEMPLATES_NAMED = f"the judge prompt templates ({', '.join(f'{name}.j2' for name in JUDGE_TEMPLATES)})"


def _settings(spec: dict[str, Any], prompts: str | None, rubrics: Any, forward: Any) -> dict[str, Any]:
    """What decides a judge's records, named for the changed-settings message (each field of its
    configuration by name, e.g. ``prompt_layout: 'cached' -> 'authors'``)."""
    return {"forward order": forward, **spec, TEMPLATES_NAMED: prompts, "its rubric text": rubrics}


def _normalised_spec(recorded: dict[str, Any]) -> dict[str, Any]:
    """A spec recorded in run.json as today's model writes it (fields it lacks take their defaults)."""
    try:
        return JudgeSpec.model_validate(recorded).model_dump(mode="json")
    except ValueError:  # pydantic's ValidationError: not a spec this version can read
        return recorded


def judge_identity(setup: JudgeSetup) -> dict[str, Any]:
    """What run.json records of a judge: its spec and the hash of the prompt templates it asks with."""
    return {**setup.spec.model_dump(mode="json"), "prompts_sha256": judge_prompts_sha256()}


def _rubric_texts(source: RubricSource) -> dict[str, str]:
    return {task: rubric.render() for task, rubric in source.by_task.items()}


def build_setups(config: EvalConfig, run_dir: str | Path | RunDir, backends: Mapping[str, Any]) -> list[JudgeSetup]:
    """Judges and rubric sources for every configuration; ``backends`` maps judge name → backend
    (an evidence-only judge needs none: a missing name or ``None``)."""
    root = run_dir.root if isinstance(run_dir, RunDir) else Path(run_dir)
    setups = []
    for spec in config.judges:
        backend = backends.get(spec.name)
        judge = PairwiseJudge(backend, spec.judge_settings())
        evidence = judge if judge.ocr_reader is not None else None
        setups.append(JudgeSetup(spec, judge, build_source(spec, config, backend, root), evidence))
    return setups


# ------------------------------------------------------------------------- arrpo eval
@dataclass
class EvalResult:
    """What :func:`evaluate` did: the records it wrote, the report, and every judge's answers on the pairs."""

    run_dir: RunDir
    pairs: int
    written: int
    report: Report
    answers: dict[str, int] = field(default_factory=dict)
    invalid_reasons: dict[str, list[str]] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.report.metrics


async def evaluate(
    config: EvalConfig,
    pairs: Sequence[PreferencePair],
    out: str | Path | RunDir,
    *,
    backends: Mapping[str, Any] | None = None,
    ray: str | None = None,
    retry_invalid: bool = False,
    info: Mapping[str, Any] | None = None,
    max_pending: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    on_start: Callable[[int], None] | None = None,
    on_record: Callable[[str, EvalRecord], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> EvalResult:
    """Evaluate ``config``'s judges on ``pairs`` into the run directory ``out`` and write its report.

    ``backends`` maps judge name → an open backend (the caller closes them); by default one backend
    is opened per distinct backend setting of the config and closed at the end, none for an
    evidence-only judge (so a config of evidence-only judges needs no endpoint). ``ray`` (a Ray
    address, ``local`` for a local cluster) runs every judge that asks a model on a Ray actor pool
    instead. A rerun resumes (see :class:`EvalRunner`). ``max_pending`` bounds pairs in flight (default: twice the
    largest total concurrency of the judges' backends). ``on_start(records to write)``,
    ``on_record(judge, record)`` and ``on_note(text)`` report progress (see :meth:`EvalRunner.run`). Raises
    :class:`~arrpo.vlm.base.BackendUnavailable` when no backend or Ray pool can be started.
    """
    from arrpo.vlm.settings import open_backend

    run_dir = out if isinstance(out, RunDir) else RunDir(out)
    opened: dict[str, Any] = {}
    if backends is None:
        by_name = {}
        for spec in config.judges:
            if not spec.asks_model:  # the evidence-only judge: no backend, no endpoint needed
                continue
            key = config.backend_for(spec).model_dump_json()
            if key not in opened:
                opened[key] = open_backend(config.backend_for(spec))
            by_name[spec.name] = opened[key]
        backends = by_name
    pools: list[Any] = []
    try:
        setups = build_setups(config, run_dir, backends)
        if ray is not None:
            pools = _judges_on_ray(setups, config, ray)
        if max_pending is None:
            max_pending = max(config.backend_for(spec).total_concurrency() for spec in config.judges) * 2
        runner = EvalRunner(setups, run_dir, forward=config.forward, max_pixels=config.max_pixels,
                            max_pending=max_pending, retry_invalid=retry_invalid)

        written = await runner.run(pairs, info=info, on_start=on_start, on_record=on_record, on_note=on_note)
    finally:
        for pool in pools:
            pool.shutdown()
        for backend in opened.values():
            with contextlib.suppress(Exception):  # closing is best effort: the records are written
                await backend.aclose()
    report = write_report(run_dir, resamples=resamples, seed=seed)
    result = EvalResult(run_dir=run_dir, pairs=len(pairs), written=written, report=report)
    ids = {p.id for p in pairs}
    for setup in setups:
        outcomes = [o for pid, r in run_dir.records(setup.name).items() if pid in ids for o in r.outcomes]
        result.answers[setup.name] = len(outcomes)
        result.invalid_reasons[setup.name] = [o.invalid_reason or "no reason given" for o in outcomes
                                              if o.winner == "invalid"]
    return result


def _judges_on_ray(setups: list[JudgeSetup], config: EvalConfig, address: str) -> list[Any]:
    """Give every judge setup that asks a model a Ray actor pool (same backend settings and judge options)."""
    from arrpo.scale.ray_judge import RayPoolJudge
    from arrpo.scale.ray_runner import RayJudgeRunner, connect

    pools: list[Any] = []
    try:
        connect(address)
        for setup in setups:
            if not setup.spec.asks_model:  # asks no model: OCR runs in this process
                continue
            pool = RayPoolJudge(RayJudgeRunner(config.backend_for(setup.spec), setup.judge.settings))
            setup.judge = pool
            pools.append(pool)
    except Exception as exc:  # Ray missing, cluster unreachable, actors refused
        for pool in pools:
            pool.shutdown()
        raise BackendUnavailable(f"cannot start judges on the Ray cluster at {address!r}: {exc}") from exc
    return pools
