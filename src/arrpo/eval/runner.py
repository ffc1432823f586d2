"""Run judge configurations over a dataset in both orders, resumably.

Every pair is judged twice per configuration: *forward* and *reverse* (the same comparison with
the images exchanged, via :meth:`Comparison.swapped`), each with ``PairwiseJudge(order="given")``.
By default forward shows the human-preferred image as Image 1 (``forward: preferred_first``), so
Δ = forward − reverse accuracy measures position bias on any dataset; ``forward: given`` uses the
dataset's A/B order instead. Ties in the label are shown in the dataset's order.

The run directory holds everything a report needs::

    run.json                 what was run (dataset, judges, settings)
    pairs.jsonl              the pairs (prompt, label, subset, image paths)
    verdicts/<judge>.jsonl   one line per judged pair, appended as it finishes
    thumbs/                  small JPEGs of every judged image
    rubrics/<judge>/         prompt-level rubrics, written once

Killed runs resume: pairs with a line in ``verdicts/<judge>.jsonl`` are not asked again
(``retry_invalid`` asks again those with an invalid answer; a pair whose label changed since is
asked again too; the newest line wins).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arrpo._version import __version__
from arrpo.datasets.pairs import PreferencePair
from arrpo.eval.config import ConfigError, EvalConfig, JudgeSpec
from arrpo.eval.providers import RubricSource, RubricUnavailable, build_source
from arrpo.html.thumbs import save_thumbnail
from arrpo.images import ImageData, ImageError
from arrpo.jsonl import JsonlWriter, iter_records
from arrpo.judge import PairwiseJudge, judge_prompts_sha256
from arrpo.schema import Comparison, Verdict
from arrpo.vlm.base import BackendUnavailable
from arrpo.vlm.wrappers import counting_retries


@dataclass
class JudgeSetup:
    """A judge configuration ready to run: its spec, judge and rubric source."""

    spec: JudgeSpec
    judge: Any  # a PairwiseJudge, or anything with ``async judge(comparison) -> Verdict``
    rubrics: RubricSource

    @property
    def name(self) -> str:
        return self.spec.name


def verdict_path(run_dir: Path, judge_name: str) -> Path:
    return Path(run_dir) / "verdicts" / f"{judge_name}.jsonl"


def latest_records(path: Path) -> dict[str, dict[str, Any]]:
    """The newest record per pair id in a verdict file."""
    records: dict[str, dict[str, Any]] = {}
    for record in iter_records(path):
        if record.get("id") is not None:
            records[str(record["id"])] = record
    return records


def is_invalid(record: dict[str, Any]) -> bool:
    return any(record.get(side, {}).get("winner") == "invalid" for side in ("forward", "reverse"))


def is_stale(record: dict[str, Any], pair: PreferencePair) -> bool:
    """Whether a record was made for another version of the pair (its label or task changed, e.g.
    a rerun with another A/B randomisation seed): its answers do not describe this pair."""
    return record.get("label") != pair.label or record.get("task", pair.task) != pair.task


def forward_shows_b_first(pair: PreferencePair, forward: str) -> bool:
    """Whether the forward order shows B as Image 1 (preferred-first forward with a B label)."""
    return forward == "preferred_first" and pair.label == "B"


def _outcome(verdict: Verdict | None, *, shown_first: str, swapped: bool, label: str,
             error: str | None = None, retries: int = 0) -> dict[str, Any]:
    """One order's result in the original A/B terms.

    ``attempts`` counts the answers asked for (parse re-asks included), ``cached`` those of them
    the response cache answered; ``calls`` the requests actually sent to the model for them: HTTP
    retries included, cache hits excluded.
    """
    if verdict is None:
        return {"shown_first": shown_first, "winner": "invalid", "correct": False, "invalid_reason": error,
                "reason": None, "raw": None, "latency_s": 0.0, "attempts": 0, "cached": 0, "calls": 0,
                "prompt_tokens": 0, "completion_tokens": 0}
    winner = verdict.winner
    if swapped and winner in ("A", "B"):
        winner = "B" if winner == "A" else "A"
    answer = verdict.answers[0] if verdict.answers else None
    attempts = sum(a.attempts for a in verdict.answers)
    cached = sum(a.cached for a in verdict.answers)
    return {
        "shown_first": shown_first,
        "winner": winner,
        "correct": winner == label,
        "reason": verdict.reason,
        "raw": answer.raw if answer else None,
        "invalid_reason": verdict.invalid_reason,
        "latency_s": round(verdict.latency_s, 4),
        "attempts": attempts,
        "cached": cached,
        "calls": attempts - cached + retries,
        "prompt_tokens": verdict.usage.prompt_tokens,
        "completion_tokens": verdict.usage.completion_tokens,
    }


class EvalRunner:
    """Judge pairs with several judge configurations, forward and reverse, appending records."""

    def __init__(self, setups: Sequence[JudgeSetup], run_dir: str | Path, *, forward: str = "preferred_first",
                 max_pixels: int | None = None, max_pending: int = 32, retry_invalid: bool = False):
        if forward not in ("preferred_first", "given"):
            raise ValueError("forward must be 'preferred_first' or 'given'")
        self.setups = list(setups)
        self.run_dir = Path(run_dir)
        self.forward = forward
        self.max_pixels = max_pixels
        self.max_pending = max(1, max_pending)
        self.retry_invalid = retry_invalid

    # ------------------------------------------------------------------ planning
    def todo(self, pairs: Sequence[PreferencePair]) -> dict[str, list[str]]:
        """Pair ids → names of the judges that still have to judge them."""
        remaining: dict[str, list[str]] = {}
        for setup in self.setups:
            done = latest_records(verdict_path(self.run_dir, setup.name))
            for pair in pairs:
                record = done.get(pair.id)
                if record is None or is_stale(record, pair) or (self.retry_invalid and is_invalid(record)):
                    remaining.setdefault(pair.id, []).append(setup.name)
        return remaining

    def write_manifest(self, pairs: Sequence[PreferencePair], info: dict[str, Any]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        manifest = self.run_dir / "pairs.jsonl"
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
        (self.run_dir / "run.json").write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def check_unchanged(self) -> None:
        """Refuse to resume a run whose judges were changed under the same name.

        Records of a judge are only comparable if they came from one configuration: the same spec
        (kind, rubric files, sampling), the same judge prompt templates (``prompts_sha256``; a run
        recorded before the hash was kept is not checked for it), the same rubric text and the
        same forward order.
        """
        path = self.run_dir / "run.json"
        if not path.exists():
            return
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        specs = {j.get("name"): j for j in before.get("judges", [])}
        rubrics = before.get("rubrics", {})
        for setup in self.setups:
            if not latest_records(verdict_path(self.run_dir, setup.name)):
                continue
            changed = []
            if before.get("forward", self.forward) != self.forward:
                changed.append(f"forward order ({before.get('forward')} → {self.forward})")
            old = dict(specs.get(setup.name, {}))
            old_prompts = old.pop("prompts_sha256", None)
            if setup.name in specs and not _same_spec(old, setup.spec):
                changed.append("its configuration")
            if old_prompts is not None and old_prompts != judge_prompts_sha256():
                changed.append("the judge prompt templates (judge.j2, judge_retry.j2; e.g. another arrpo version)")
            if setup.name in rubrics and rubrics[setup.name] != _rubric_texts(setup.rubrics):
                changed.append("its rubric text")
            if changed:
                raise ConfigError(
                    f"judge {setup.name!r} changed since {self.run_dir} was started ({', '.join(changed)}): "
                    "its old and new answers would be mixed. Use a new --out, or give the judge a new name."
                )

    # ------------------------------------------------------------------- running
    async def run(self, pairs: Sequence[PreferencePair], *, info: dict[str, Any] | None = None,
                  on_record: Callable[[str, dict[str, Any]], None] | None = None) -> int:
        """Judge what is left to judge; returns the number of records written."""
        for setup in self.setups:
            setup.rubrics.check_tasks({p.task for p in pairs})
        self.check_unchanged()
        self.write_manifest(pairs, info or {})
        remaining = self.todo(pairs)
        by_id = {p.id: p for p in pairs}
        writers = {s.name: JsonlWriter(verdict_path(self.run_dir, s.name)) for s in self.setups}
        gate = asyncio.Semaphore(self.max_pending)
        written = 0

        async def one(pair_id: str, names: list[str]) -> None:
            nonlocal written
            async with gate:
                pair = by_id[pair_id]
                try:
                    loaded = await asyncio.to_thread(self._load, pair)
                except Exception as exc:  # one pair's failure is that pair's record, never the run's end
                    loaded = {"error": _failure(exc), "thumbs": {}}
                for setup in (s for s in self.setups if s.name in names):
                    try:
                        record = await self.judge_pair(setup, pair, loaded)
                    except BackendUnavailable:
                        raise  # no backend at all: every pair would fail the same way
                    except Exception as exc:
                        record = self.error_record(setup, pair, loaded, _failure(exc), time.perf_counter())
                    try:
                        writers[setup.name].write(record)
                    except Exception as exc:
                        record = self.error_record(setup, pair, {}, _failure(exc), time.perf_counter())
                        writers[setup.name].write(record)
                    written += 1
                    if on_record is not None:
                        on_record(setup.name, record)

        started = time.perf_counter()
        tasks = [asyncio.ensure_future(one(pid, names)) for pid, names in remaining.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # on a fatal error, stop the others before the files close
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in writers.values():
                writer.close()
            self._log_session(written, time.perf_counter() - started)
        return written

    def _load(self, pair: PreferencePair) -> dict[str, Any]:
        """Images and thumbnails of a pair; an ``error`` entry when an image cannot be used."""
        thumbs = self.run_dir / "thumbs"
        try:
            images: dict[str, ImageData | None] = {
                "a": pair.image_a.load(self.max_pixels),
                "b": pair.image_b.load(self.max_pixels),
                "source": pair.source.load(self.max_pixels) if pair.source else None,
            }
        except ImageError as exc:
            return {"error": f"image error: {exc}", "thumbs": {}}
        names = {k: save_thumbnail(v, thumbs) for k, v in images.items() if v is not None}
        return {"images": images, "thumbs": names}

    async def judge_pair(self, setup: JudgeSetup, pair: PreferencePair, loaded: dict[str, Any]) -> dict[str, Any]:
        """Both orders of one pair under one judge configuration, as a record."""
        started = time.perf_counter()
        b_first = forward_shows_b_first(pair, self.forward)
        fwd_first, rev_first = ("B", "A") if b_first else ("A", "B")
        record: dict[str, Any] = {
            "id": pair.id, "judge": setup.name, "subset": pair.subset, "label": pair.label,
            "task": pair.task, "thumbs": loaded.get("thumbs", {}), "rubric_key": None,
        }
        error = loaded.get("error")
        rubric = None
        if error is None:
            try:
                rubric, record["rubric_key"] = await setup.rubrics.rubric_for(pair)
            except RubricUnavailable as exc:
                error = f"no rubric: {exc}"
        if error is not None:
            return self.error_record(setup, pair, loaded, error, started, record.get("rubric_key"))
        images = loaded["images"]
        comparison = Comparison(
            id=pair.id, task=pair.task, prompt=pair.prompt, image_a=images["a"], image_b=images["b"],
            source=images["source"], rubric=rubric,
        )
        forward = comparison.swapped() if b_first else comparison
        (fwd, fwd_retries), (rev, rev_retries) = await asyncio.gather(
            _judge_counting(setup.judge, forward), _judge_counting(setup.judge, forward.swapped())
        )
        record["forward"] = _outcome(fwd, shown_first=fwd_first, swapped=b_first, label=pair.label,
                                     retries=fwd_retries)
        record["reverse"] = _outcome(rev, shown_first=rev_first, swapped=not b_first, label=pair.label,
                                     retries=rev_retries)
        record["wall_s"] = round(time.perf_counter() - started, 4)
        return record

    def error_record(self, setup: JudgeSetup, pair: PreferencePair, loaded: dict[str, Any], error: str,
                     started: float, rubric_key: str | None = None) -> dict[str, Any]:
        """The record of a pair that could not be judged: both orders invalid, ``error`` saying why."""
        fwd_first, rev_first = ("B", "A") if forward_shows_b_first(pair, self.forward) else ("A", "B")
        return {
            "id": pair.id, "judge": setup.name, "subset": pair.subset, "label": pair.label,
            "task": pair.task, "thumbs": loaded.get("thumbs", {}), "rubric_key": rubric_key,
            "error": error,
            "forward": _outcome(None, shown_first=fwd_first, swapped=False, label=pair.label, error=error),
            "reverse": _outcome(None, shown_first=rev_first, swapped=False, label=pair.label, error=error),
            "wall_s": round(time.perf_counter() - started, 4),
        }

    def _log_session(self, written: int, wall_s: float) -> None:
        path = self.run_dir / "sessions.jsonl"
        with JsonlWriter(path, fsync=False) as writer:
            writer.write({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "records": written,
                          "wall_s": round(wall_s, 3), "arrpo_version": __version__})


async def _judge_counting(judge: Any, comparison: Comparison) -> tuple[Verdict, int]:
    """Judge one order, with the HTTP retries its model calls needed."""
    with counting_retries() as tally:
        verdict = await judge.judge(comparison)
    return verdict, tally.retries


def _failure(exc: BaseException) -> str:
    return f"failed: {type(exc).__name__}: {exc}"[:2000]


def _same_spec(recorded: dict[str, Any], spec: JudgeSpec) -> bool:
    """Whether a spec recorded in run.json is ``spec`` (fields added since then take their defaults)."""
    try:
        return JudgeSpec.model_validate(recorded).model_dump(mode="json") == spec.model_dump(mode="json")
    except ValueError:  # pydantic's ValidationError: written by a version with other fields
        return False


def judge_identity(setup: JudgeSetup) -> dict[str, Any]:
    """What run.json records of a judge: its spec and the hash of the prompt templates it asks with."""
    return {**setup.spec.model_dump(mode="json"), "prompts_sha256": judge_prompts_sha256()}


def _rubric_texts(source: RubricSource) -> dict[str, str]:
    return {task: rubric.render() for task, rubric in source.by_task.items()}


def build_setups(config: EvalConfig, run_dir: Path, backends: dict[str, Any]) -> list[JudgeSetup]:
    """Judges and rubric sources for every configuration; ``backends`` maps judge name → backend."""
    setups = []
    for spec in config.judges:
        backend = backends[spec.name]
        judge = PairwiseJudge(backend, spec.judge_settings())
        setups.append(JudgeSetup(spec, judge, build_source(spec, config, backend, run_dir)))
    return setups
