"""Few-shot rubric learning from labelled pairs: generate → label-blind verify → refine → structure.

For each seed pair the generator sees both images and which one people preferred and writes K
criteria explaining the preference. The verifier is the ordinary :class:`~arrpo.judge.PairwiseJudge`
given only those criteria as a flat rubric and the *unlabelled* pair. By default
(``verify_order="both"``) it is asked in both orders and must pick the preferred image in each, so
a verifier that always answers "Image 1" verifies nothing; ``"random"`` asks one order, drawn once
per pair from the pair's content (never from the criteria), so refinements cannot re-draw it. If
the verifier does not reproduce the preference, the refiner gets the old criteria and what the
verifier decided and writes new ones, up to ``t_max`` times; then the pair is dropped. Verified criteria of all pairs
are consolidated into one Theme-Tips rubric (:mod:`arrpo.rubrics.structure`), optionally after
MCR² diversity selection (:mod:`arrpo.rubrics.mcr`).

Every finished pair is appended to a state file (:mod:`arrpo.rubrics.state`, through the resumable
job loop of :mod:`arrpo.jobs`), so a killed run resumes where it stopped and, with the same cached
responses, ends with the same rubric as an uninterrupted run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from arrpo._sync import run_sync
from arrpo.datasets.seeds import LoadedPair, PreferencePair, SeedSet
from arrpo.errors import ArrpoError
from arrpo.images import ImageError
from arrpo.jobs import SetAside, run_items
from arrpo.jsonl import JsonlWriter
from arrpo.judge import IMAGE_LABELS, PairwiseJudge, judge_in_orders, random_order
from arrpo.prompts import render, template_sha256
from arrpo.rubric import Provenance, Rubric
from arrpo.rubrics.ask import CRITERIA_SCHEMA, CRITERIA_SHAPE, ask_json, model_name
from arrpo.rubrics.guide import Guide
from arrpo.rubrics.mcr import Embedder, select_diverse
from arrpo.rubrics.parsing import CriteriaReply, parse_criteria
from arrpo.rubrics.state import open_state, prepare_state, read_state
from arrpo.rubrics.structure import normalise_criterion, pool_criteria, structure_criteria
from arrpo.schema import Comparison, Order, Task, Usage, Verdict, Winner
from arrpo.text import exception_text
from arrpo.vlm.base import BackendError, BackendUnavailable, Message, VLMBackend
from arrpo.vocab import VerifyOrder

PairStatus = Literal["passed_first", "refined", "dropped", "bad_input"]
VERIFIED: tuple[PairStatus, ...] = ("passed_first", "refined")

#: Labels the generator and refiner see before each image (they may know the preference).
PREFERRED_LABEL = "Preferred image:"
OTHER_LABEL = "Other image:"
SOURCE_LABEL = "Source image (before editing):"


#: Learning's answer budget: criteria lists and refinements are longer than a verdict.
LEARN_MAX_TOKENS = 2048


class LearnConfig(BaseModel):
    """Settings of a learning run (defaults follow the paper: K = 5, T_max = 5, 10 × 4 rubric)."""

    task: Task
    k: int = Field(5, ge=1, description="Criteria generated per pair.")
    t_max: int = Field(5, ge=0, description="Refinements per pair before it is dropped.")
    verify_order: VerifyOrder = Field(
        "both",
        description="'both': the verifier must pick the preferred image in both orders; 'random': one "
        "order per pair, drawn once from the pair's content and kept for all its refinements.",
    )
    seed: int = Field(0, description="Salt of the verifier's random order.")
    max_themes: int = Field(10, ge=1)
    max_tips: int = Field(4, ge=0)
    mcr_select: int | None = Field(None, ge=1, description="Keep this many criteria by MCR² before structuring.")
    parse_retries: int = Field(2, ge=0, description="Repair requests after an unusable generator reply.")
    pair_concurrency: int = Field(8, ge=1, description="Pairs learned at once.")
    temperature: float = 0.0
    max_tokens: int = Field(LEARN_MAX_TOKENS, ge=1, description="Most tokens of every learning call's answer.")
    max_pixels: int | None = Field(None, description="Downscale seed images above this many pixels.")

    def fingerprint(self) -> dict[str, object]:
        """The settings that decide a pair's outcome (fixed for the life of a state file)."""
        return self.model_dump(include={"task", "k", "t_max", "verify_order", "seed", "parse_retries",
                                        "temperature", "max_tokens", "max_pixels"})


#: Templates whose wording decides a pair's outcome; their hash is part of the resume fingerprint,
#: so a state written under other prompts is not silently continued under new ones.
LEARN_TEMPLATES = ("rubric_generate", "rubric_refine", "_rubric_rules", "rubric_repair", "judge", "judge_retry")


class VerifyAnswer(BaseModel):
    """What the verifier answered when shown the pair in one order."""

    order: Order = Field(description="'AB': the seed file's A was shown as Image 1; 'BA': B was.")
    winner: Winner = Field(description="Its choice in the seed file's A/B terms.")
    reason: str | None = None
    invalid_reason: str | None = None


class VerifyAttempt(BaseModel):
    """One label-blind verification of a set of criteria."""

    criteria: list[str]
    winner: Winner = Field(description="What the verifier chose, in the seed file's A/B terms.")
    correct: bool
    orders: list[Order] = Field(default_factory=list, description="Orders the pair was shown in.")
    reason: str | None = None
    invalid_reason: str | None = None
    answers: list[VerifyAnswer] = Field(default_factory=list, description="The answer in each order shown.")
    orders_agree: bool | None = Field(None, description="With both orders: whether the two answers agreed.")

    @property
    def order_disagreement(self) -> bool:
        """A failure because the two orders gave different winners (position bias or vague criteria)."""
        return self.orders_agree is False


class PairOutcome(BaseModel):
    """The record of one pair (one line of the state file)."""

    id: str
    status: PairStatus
    attempts: list[VerifyAttempt] = Field(default_factory=list)
    criteria: list[str] = Field(default_factory=list, description="Verified criteria (passed pairs).")
    rejected: list[str] = Field(
        default_factory=list, description="Generated criteria discarded for naming an image by position or label."
    )
    note: str | None = None
    usage: Usage = Field(default_factory=Usage)
    calls: int = Field(0, description="Model requests spent on the pair (repairs and both orders counted).")

    @property
    def refinements(self) -> int:
        return max(0, len(self.attempts) - 1)

    def record(self) -> dict[str, object]:
        """The state-file line of the pair."""
        return {"kind": "pair", **self.model_dump(mode="json")}


@dataclass(frozen=True)
class PairFailure:
    """A pair that could not be finished (a backend failure, any unexpected exception): it stays
    unfinished and is learned again on a rerun."""

    id: str
    message: str

    @classmethod
    def of(cls, pair: PreferencePair, exc: Exception) -> PairFailure:
        return cls(pair.id, str(exc) if isinstance(exc, PairBackendError) else exception_text(exc))

    def record(self) -> dict[str, object]:
        """The state-file line of the failure (``kind: error``)."""
        return {"kind": "error", "id": self.id, "message": self.message}


class PairBackendError(ArrpoError, RuntimeError, kind="backend"):
    """The backend failed for a pair (not the model's judgement): the pair stays unfinished."""


class LearnSummary(BaseModel):
    """Counts of a run; rates are over pairs that reached a verdict (passed, refined, dropped).

    ``passed_first``: verified on the first pass; ``refined``: verified after refinement;
    ``dropped``: never verified. ``failed_verifications`` counts every verification that did not
    reproduce the preference, ``order_disagreements`` those of them where the two orders disagreed.
    """

    pairs: int
    passed_first: int = 0
    refined: int = 0
    dropped: int = 0
    bad_input: int = 0
    failed: int = 0
    mean_attempts: float = 0.0
    verifications: int = 0
    failed_verifications: int = 0
    order_disagreements: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def verified(self) -> int:
        return self.passed_first + self.refined

    @property
    def decided(self) -> int:
        return self.passed_first + self.refined + self.dropped

    def rate(self, count: int) -> float:
        return count / self.decided if self.decided else 0.0

    @classmethod
    def of(cls, total: int, outcomes: list[PairOutcome], failed: int = 0) -> LearnSummary:
        counts = {status: sum(o.status == status for o in outcomes) for status in PairStatus.__args__}  # type: ignore[attr-defined]
        decided = [o for o in outcomes if o.status != "bad_input"]
        mean = sum(len(o.attempts) for o in decided) / len(decided) if decided else 0.0
        attempts = [a for o in outcomes for a in o.attempts]
        return cls(
            pairs=total, failed=failed, mean_attempts=mean, **counts,
            verifications=len(attempts),
            failed_verifications=sum(not a.correct for a in attempts),
            order_disagreements=sum(a.order_disagreement for a in attempts),
            calls=sum(o.calls for o in outcomes),
            prompt_tokens=sum(o.usage.prompt_tokens for o in outcomes),
            completion_tokens=sum(o.usage.completion_tokens for o in outcomes),
        )


@dataclass
class LearnResult:
    """Outcome of :meth:`RubricLearner.learn`: the rubric (None when it could not be built)."""

    rubric: Rubric | None
    outcomes: list[PairOutcome]
    summary: LearnSummary
    errors: dict[str, str] = field(default_factory=dict)
    resumed: int = 0
    message: str | None = None
    structure: dict[str, object] | None = None
    set_aside: SetAside | None = None


class RubricLearner:
    """Learn a Theme-Tips rubric from labelled pairs.

    Args:
        backend: the VLM used for generation, verification, refinement and structuring.
        config: :class:`LearnConfig`.
        guide: optional guide exemplars shown to the generator and refiner ("w/ guide").
        embedder: texts → embeddings for MCR² (default: the local sentence-transformers model).
    """

    def __init__(
        self,
        backend: VLMBackend,
        config: LearnConfig,
        *,
        guide: Guide | None = None,
        embedder: Embedder | None = None,
    ):
        self.backend = backend
        self.config = config
        self.guide = guide
        self.embedder = embedder
        self.verifier = PairwiseJudge(
            backend, order="given", on_disagree="tie", seed=config.seed, parse_retries=1,
            temperature=config.temperature, max_tokens=config.max_tokens,
        )

    # --------------------------------------------------------------- one pair
    def generation_messages(
        self, pair: LoadedPair, previous: list[str] | None = None, feedback: str | None = None
    ) -> list[Message]:
        """The generator's (``previous is None``) or refiner's request; it shows the label."""
        parts: list = self.guide.parts(pair.pair.task) if self.guide else []
        if pair.source is not None:
            parts += [SOURCE_LABEL, pair.source]
        parts += [PREFERRED_LABEL, pair.preferred_image, OTHER_LABEL, pair.other_image]
        common = {"task": pair.pair.task, "prompt": pair.pair.prompt, "k": self.config.k}
        if previous is None:
            text = render("rubric_generate", guide=self.guide is not None, **common)
        else:
            text = render("rubric_refine", previous=previous, feedback=feedback, **common)
        return [Message.user(*parts, text)]

    async def _criteria(
        self, pair: LoadedPair, previous: list[str] | None, feedback: str | None
    ) -> tuple[CriteriaReply, Usage, int]:
        asked = await ask_json(
            self.backend,
            self.generation_messages(pair, previous, feedback),
            lambda reply: parse_criteria(reply, self.config.k),
            lambda parsed: parsed.problem,
            shape=CRITERIA_SHAPE,
            schema=CRITERIA_SCHEMA,
            retries=self.config.parse_retries,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
        )
        return asked.parsed, asked.usage, asked.attempts

    def verify_orders(self, comparison: Comparison) -> list[Order]:
        """The orders every verification of a pair uses: both, or one coin drawn from the pair's
        content (task, prompt, images, source; never the criteria), the same for all refinements."""
        if self.config.verify_order == "both":
            return ["AB", "BA"]
        return [random_order(comparison.model_copy(update={"rubric": None}), self.config.seed)]

    async def verify(self, pair: LoadedPair, criteria: list[str]) -> Verdict:
        """Judge the unlabelled pair with only ``criteria`` as the rubric, in :meth:`verify_orders`."""
        comparison = pair.comparison(Rubric.from_criteria(criteria, task=pair.pair.task))
        return await judge_in_orders(self.verifier, comparison, self.verify_orders(comparison), "tie")

    async def learn_pair(self, pair: PreferencePair) -> PairOutcome:
        """Generate, verify and refine one pair.

        Raises:
            PairBackendError: the backend failed (the pair should be tried again later).
        """
        try:
            loaded = await asyncio.to_thread(pair.load, self.config.max_pixels)
        except ImageError as exc:
            return PairOutcome(id=pair.id, status="bad_input", note=str(exc))
        usage, calls = Usage(), 0
        attempts: list[VerifyAttempt] = []
        rejected: list[str] = []
        previous: list[str] | None = None
        feedback: str | None = None
        for round_ in range(self.config.t_max + 1):
            stage = "generator" if previous is None else "refiner"
            try:
                reply, used, asked = await self._criteria(loaded, previous, feedback)
            except BackendUnavailable:
                raise  # nothing usable is configured: the run stops (arrpo.jobs)
            except BackendError as exc:
                raise PairBackendError(f"{stage}: {exc}") from exc
            usage, calls = usage + used, calls + asked
            rejected += reply.rejected
            if reply.problem is not None:
                note = f"{stage} gave no usable criteria: {reply.problem}"
                return PairOutcome(id=pair.id, status="dropped", attempts=attempts, rejected=rejected,
                                   note=note, usage=usage, calls=calls)
            verdict = await self.verify(loaded, reply.criteria)
            usage, calls = usage + verdict.usage, calls + sum(a.attempts for a in verdict.answers)
            if _backend_failed(verdict):
                raise PairBackendError(f"verifier: {verdict.invalid_reason}")
            correct = verdict.winner == pair.preferred
            attempts.append(
                VerifyAttempt(
                    criteria=reply.criteria, winner=verdict.winner, correct=correct,
                    orders=[a.order for a in verdict.answers], reason=verdict.reason,
                    invalid_reason=verdict.invalid_reason, orders_agree=verdict.orders_agree,
                    answers=[VerifyAnswer(order=a.order, winner=a.winner, reason=a.reason,
                                          invalid_reason=a.invalid_reason) for a in verdict.answers],
                )
            )
            if correct:
                status: PairStatus = "passed_first" if round_ == 0 else "refined"
                return PairOutcome(id=pair.id, status=status, attempts=attempts, criteria=reply.criteria,
                                   rejected=rejected, usage=usage, calls=calls)
            previous, feedback = reply.criteria, verifier_feedback(verdict, pair.preferred, pair.task)
        note = f"not verified after {self.config.t_max} refinement(s)"
        return PairOutcome(id=pair.id, status="dropped", attempts=attempts, rejected=rejected, note=note,
                           usage=usage, calls=calls)

    # ---------------------------------------------------------------- the run
    def open_run(self, seeds: SeedSet, state_path: str | Path) -> tuple[SetAside | None, set[str]]:
        """Apply the changed-settings rule to ``state_path`` (a state of other settings is set
        aside and returned) and return the ids of the seed pairs already learned there."""
        moved = prepare_state(state_path, self.fingerprint(seeds))
        ids = {p.id for p in seeds.pairs}
        return moved, set(read_state(state_path)) & ids

    async def learn(
        self,
        seeds: SeedSet,
        state_path: str | Path,
        *,
        on_outcome: Callable[[PairOutcome], None] | None = None,
        on_error: Callable[[PreferencePair, str], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        allow_incomplete: bool = False,
    ) -> LearnResult:
        """Learn every pair not yet in ``state_path``, then build the rubric.

        A state written under other settings is set aside first (``result.set_aside``, and a line
        to ``on_note``). A pair whose backend calls failed, or that failed in any other unexpected
        way, stays unfinished: the failure is listed in ``errors`` and appended to the state file
        as an ``error`` record, and the other pairs go on (:func:`arrpo.jobs.run_items`;
        ``BackendUnavailable`` stops the run). The rubric is built only when every pair is
        finished, unless ``allow_incomplete``.
        """
        fingerprint = self.fingerprint(seeds)
        moved, _ = self.open_run(seeds, state_path)
        if moved is not None and on_note is not None:
            on_note(moved.message("the learning settings"))
        ids = {p.id for p in seeds.pairs}
        done = {i: PairOutcome.model_validate(r) for i, r in read_state(state_path).items() if i in ids}
        resumed = len(done)
        errors: dict[str, str] = {}

        def finished(pair: PreferencePair, result: PairOutcome | PairFailure) -> None:
            if isinstance(result, PairFailure):
                errors[pair.id] = result.message
                if on_error:
                    on_error(pair, result.message)
                return
            done[pair.id] = result
            if on_outcome:
                on_outcome(result)

        with open_state(state_path, fingerprint) as writer:
            await run_items(
                [p for p in seeds.pairs if p.id not in done], self.learn_pair,
                failure=PairFailure.of, write=lambda _pair, result: writer.write(result.record()),
                on_done=finished, concurrency=self.config.pair_concurrency,
            )

        outcomes = [done[p.id] for p in seeds.pairs if p.id in done]
        summary = LearnSummary.of(len(seeds.pairs), outcomes, failed=len(errors))
        result = LearnResult(rubric=None, outcomes=outcomes, summary=summary, errors=errors, resumed=resumed,
                             set_aside=moved)
        if errors and not allow_incomplete:
            result.message = f"{len(errors)} pair(s) failed with backend errors; run again to retry them"
            return result
        if not any(o.status in VERIFIED for o in outcomes):
            result.message = "no pair was verified, so there are no criteria to build a rubric from"
            return result
        result.rubric, result.structure = await self.build(outcomes, seeds, summary)
        with JsonlWriter(state_path) as structure_writer:
            await asyncio.to_thread(structure_writer.write, result.structure)
        return result

    def learn_sync(self, seeds: SeedSet, state_path: str | Path, **kwargs) -> LearnResult:
        """Blocking :meth:`learn`."""
        return run_sync(self.learn(seeds, state_path, **kwargs))

    def fingerprint(self, seeds: SeedSet) -> dict[str, object]:
        return {
            **self.config.fingerprint(),
            "model": model_name(self.backend),
            "seed_file_sha256": seeds.sha256,
            "guide_sha256": self.guide.sha256 if self.guide else None,
            "prompts_sha256": template_sha256(*LEARN_TEMPLATES),
        }

    async def build(
        self, outcomes: list[PairOutcome], seeds: SeedSet, summary: LearnSummary
    ) -> tuple[Rubric, dict[str, object]]:
        """Pool the verified criteria (seed order), optionally select by MCR², and structure them;
        returns the rubric and the ``structure`` record: the numbered criteria given to the
        structurer with the seed pairs each came from, and the criterion numbers behind every
        theme and tip (None where the structurer did not say)."""
        cfg = self.config
        verified = [o for o in outcomes if o.status in VERIFIED]
        pairs_of: dict[str, list[str]] = {}
        for outcome in verified:
            for text in outcome.criteria:
                ids = pairs_of.setdefault(normalise_criterion(text), [])
                if outcome.id not in ids:
                    ids.append(outcome.id)
        pool = [text for text, _ in pool_criteria([o.criteria for o in verified])]
        selected = pool
        if cfg.mcr_select and len(pool) > cfg.mcr_select:
            indices = await asyncio.to_thread(select_diverse, pool, cfg.mcr_select, self.embedder)
            selected = [pool[i] for i in indices]
        structured = await structure_criteria(
            self.backend, selected, cfg.task, max_themes=cfg.max_themes, max_tips=cfg.max_tips,
            retries=cfg.parse_retries, temperature=cfg.temperature,
        )
        provenance = Provenance(
            method="learned",
            generator_model=model_name(self.backend),
            seed_file_sha256=seeds.sha256,
            k=cfg.k,
            t_max=cfg.t_max,
            pairs=summary.pairs,
            passed_first=summary.passed_first,
            refined=summary.refined,
            dropped=summary.dropped,
            bad_input=summary.bad_input,
            seed_format=seeds.format,
            verify_order=cfg.verify_order,
            order_disagreements=summary.order_disagreements,
            failed_verifications=summary.failed_verifications,
            guide_sha256=self.guide.sha256 if self.guide else None,
            criteria_pool=len(pool),
            criteria_structured=len(selected),
            mcr_select=cfg.mcr_select,
            structure=structured.method,
            structure_problem=structured.problem,
            max_themes=cfg.max_themes,
            max_tips=cfg.max_tips,
            tips=sum(len(t.tips) for t in structured.themes),
            tips_with_sources=structured.tips_with_sources,
            structure_calls=structured.attempts,
            learn_calls=summary.calls,
            learn_tokens=summary.prompt_tokens + summary.completion_tokens,
        )
        rubric = Rubric(themes=structured.themes, task=cfg.task, scope="task", provenance=provenance)
        record: dict[str, object] = {
            "kind": "structure",
            "method": structured.method,
            "problem": structured.problem,
            "usage": structured.usage.model_dump(),
            "calls": structured.attempts,
            "criteria": [{"n": i + 1, "text": text, "pairs": pairs_of.get(normalise_criterion(text), [])}
                         for i, text in enumerate(selected)],
            "themes": [
                {"theme": theme.theme, "sources": structured.theme_sources[i] if i < len(structured.theme_sources) else None,
                 "tips": [{"tip": tip, "sources": _at(structured.tip_sources, i, j)} for j, tip in enumerate(theme.tips)]}
                for i, theme in enumerate(structured.themes)
            ],
        }
        return rubric, record


def _at(table: list[list[list[int] | None]], i: int, j: int) -> list[int] | None:
    return table[i][j] if i < len(table) and j < len(table[i]) else None


def _backend_failed(verdict: Verdict) -> bool:
    """Whether an invalid verdict involves a backend failure (not only the model's answers).

    With both orders asked, one failed order already makes the verdict invalid, although the model
    never answered it: that is no verification result, so the pair must be asked again later.
    """
    if verdict.winner != "invalid" or not verdict.answers:
        return False
    return any(a.backend_failed for a in verdict.answers)


def verifier_feedback(verdict: Verdict, preferred: str, task: Task) -> str:
    """What the refiner is told the verifier decided (completes "the evaluator ...")."""
    if verdict.winner == "tie":
        return ("gave different answers depending on the order in which the two images were shown, so the "
                "criteria do not separate the images clearly.")
    if verdict.winner == "invalid":
        return f"could not reach a usable decision ({verdict.invalid_reason})."
    answer = next((a for a in verdict.answers if a.reason), None)
    if answer is None:
        return "chose the other image."
    label_1, label_2 = (label.rstrip(":") for label in IMAGE_LABELS[task])
    preferred_first = (answer.order == "AB") == (preferred == "A")
    mapping = (f"{label_1} was the preferred image and {label_2} the other one" if preferred_first
               else f"{label_1} was the other image and {label_2} the preferred one")
    return f"chose the other image. Its reasoning ({mapping}): {answer.reason}"
