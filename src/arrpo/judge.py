"""The rubric-conditioned pairwise judge (ARR's reward at evaluation and training time).

One holistic decision per pair, as in the paper: the model sees the rubric (or none: the direct
baseline), the prompt and the two images (plus the source image for edits) and returns
``{"rank": [r1, r2], "reason": ...}``. Position bias is handled by an order policy:

* ``given``: A is shown as Image 1.
* ``random``: a fair coin seeded by the comparison's content hash (reruns repeat).
* ``both``: ask A|B and B|A; agreement gives the winner, disagreement gives ``on_disagree``.

Two prompt layouts (``prompt_layout``), written from the same template (``prompts/judge.j2``):

* ``authors`` (default, the paper's): one user message — the labelled images first (the source
  image, "Image BASE", first for edits), then the instructions, the rubric, the prompt and the
  requirements as one text.
* ``cached``: the fixed instructions and the rubric (with the requirements) as a system message
  first, then a user message with the prompt line, the source image (edits), the labelled
  candidates and, with evidence, the evidence block. Every request with the same rubric starts
  with the same tokens, so a server's prefix cache (vLLM hashes KV blocks together with the
  images they hold) serves them instead of prefilling them again.

With ``evidence: [ocr]`` the judge reads the text the prompt asks for in both candidates (and
an edit's source image) once per comparison (reads cached by image hash), shows an "OCR evidence"
block in each order's prompt (worded the same in both orders, labels swapped), and applies
``ocr_policy`` to the model's winner; ``evidence_only`` decides from the evidence alone, asking no
model. Evidence that cannot be gathered is recorded as unavailable; judging goes on without it.

The judge never raises because a model misbehaved: backend failures, unparseable answers,
forbidden ties, refusals, and any unexpected exception while handling an answer end as
``invalid`` verdicts with the reason. Only :class:`~arrpo.vlm.base.BackendUnavailable` (nothing
usable is configured) propagates. What a verdict keeps of an answer is valid UTF-8 and at most
``max_answer_chars`` long; long answers are parsed in a worker thread, so an event loop serving
other requests never waits on one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from arrpo._sync import run_sync
from arrpo.evidence.block import OCR_BLOCK_TEMPLATE, render_ocr_block
from arrpo.evidence.values import EvidenceDecision, OcrEvidence, SampleScore, VerdictEvidence
from arrpo.images import ImageData
from arrpo.judge_settings import JudgeSettings
from arrpo.parse import RankAnswer, parse_rank_answer
from arrpo.prompts import render, template_sha256
from arrpo.schema import FAILED_PREFIX, Comparison, Order, OrderAnswer, Usage, Verdict, Winner
from arrpo.text import clip, exception_text, valid_utf8
from arrpo.vlm.base import (
    BackendError,
    BackendUnavailable,
    Message,
    NoModel,
    VLMBackend,
    VLMRequest,
)
from arrpo.vlm.cache import forget_cached
from arrpo.vocab import DisagreePolicy

if TYPE_CHECKING:
    from arrpo.evidence.ocr import OcrReader

#: Labels placed before each image, by task (the template refers to the same names).
IMAGE_LABELS = {
    "t2i": ("Image 1:", "Image 2:"),
    "edit": ("Edited Image 1:", "Edited Image 2:"),
}
SOURCE_LABEL = "Image BASE (original image):"
RANK_SCHEMA = {
    "type": "object",
    "properties": {
        "rank": {"type": "array", "items": {"type": "integer", "enum": [1, 2]}, "minItems": 2, "maxItems": 2},
        "reason": {"type": "string"},
    },
    "required": ["rank", "reason"],
}
#: The prompt templates a judge's requests are written from (the first ask, the re-ask, the
#: evidence block): one hash for every judge, so a verdict is never reused across a wording change.
JUDGE_TEMPLATES = ("judge", "judge_retry", OCR_BLOCK_TEMPLATE)
#: Answers longer than this (characters) are parsed in a worker thread, off the event loop.
PARSE_INLINE_CHARS = 32_000
#: The reason of the tie given to two byte-identical candidates (no model is asked).
IDENTICAL_IMAGES = "the two images are identical (same bytes); no preference to judge"


def identical_images(comparison: Comparison) -> bool:
    """The two candidates are the same bytes: a tie, with nothing to ask or read."""
    return comparison.image_a.sha256 == comparison.image_b.sha256
#: Comparisons whose gathered evidence a judge keeps (both orders, and a swapped copy, reuse it).
EVIDENCE_MEMO_SIZE = 1024


def judge_prompts_sha256() -> str:
    """Hash of the judge's prompt templates: verdicts made under another hash were asked in other words."""
    return template_sha256(*JUDGE_TEMPLATES)


def random_order(comparison: Comparison, seed: int = 0) -> Order:
    """The order a ``random`` policy shows a comparison in: a fair coin from its content hash."""
    digest = hashlib.sha256(f"{seed}:{comparison.key()}".encode()).digest()
    return "AB" if digest[0] % 2 == 0 else "BA"


def combine_orders(
    first: OrderAnswer, second: OrderAnswer, on_disagree: DisagreePolicy = "tie"
) -> tuple[Winner, bool | None, str | None]:
    """Resolve two order answers into (winner, orders_agree, invalid_reason)."""
    bad = [a for a in (first, second) if a.winner == "invalid"]
    if bad:
        reasons = "; ".join(f"order {a.order}: {a.invalid_reason}" for a in bad)
        return "invalid", None, reasons
    if first.winner == second.winner:
        return first.winner, True, None
    if on_disagree == "tie":
        return "tie", False, None
    if on_disagree == "first":
        return first.winner, False, None
    return "invalid", False, f"orders disagree ({first.order}: {first.winner}, {second.order}: {second.winner})"


class AsksOrders(Protocol):
    """Anything that asks a comparison in one order (:meth:`PairwiseJudge.ask`)."""

    async def ask(self, comparison: Comparison, order: Order) -> OrderAnswer: ...


async def judge_in_orders(
    judge: AsksOrders,
    comparison: Comparison,
    orders: Sequence[Order],
    on_disagree: DisagreePolicy = "tie",
    *,
    started: float | None = None,
) -> Verdict:
    """Ask ``comparison`` in each of ``orders`` (one or two, at once) and combine the answers: the
    one way the project asks both orders (the judge's policies, rubric learning's verifier, eval's
    forward and reverse). One order gives its answer; two give :func:`combine_orders`.
    ``verdict.answers`` keeps each order's answer, in the order of ``orders``; ``started`` (a
    :func:`time.perf_counter` value) is when the judging began, for ``latency_s``."""
    started = time.perf_counter() if started is None else started
    answers = list(await asyncio.gather(*(judge.ask(comparison, order) for order in orders)))
    if len(answers) == 1:
        winner, agree, invalid = answers[0].winner, None, answers[0].invalid_reason
    else:
        winner, agree, invalid = combine_orders(answers[0], answers[1], on_disagree)
    total = Usage()
    for answer in answers:
        total = total + answer.usage
    return Verdict(
        id=comparison.id,
        winner=winner,
        reason=next((a.reason for a in answers if a.reason), None),
        answers=answers,
        orders_agree=agree,
        invalid_reason=invalid if winner == "invalid" else None,
        latency_s=time.perf_counter() - started,
        usage=total,
    )


class PairwiseJudge:
    """Judge comparisons with a VLM backend.

    Args:
        backend: any :class:`~arrpo.vlm.base.VLMBackend` (usually from :func:`arrpo.vlm.build_backend`);
            ``None`` for a judge that asks no model (``evidence_only``; see
            :func:`arrpo.vlm.settings.open_judge_backend`): asking a model then raises
            :class:`~arrpo.vlm.base.BackendUnavailable`.
        settings: the :class:`~arrpo.judge_settings.JudgeSettings` (order policy, ties, re-asks,
            sampling, how much of an answer is kept); default: its defaults.
        rubric: default rubric for comparisons that carry none (``None``: the direct judge).
        ocr_reader: the :class:`~arrpo.evidence.ocr.OcrReader` of ``evidence: [ocr]`` (default: the
            process's shared reader, :func:`~arrpo.evidence.ocr.shared_reader`).
        **changes: settings fields by name, on top of ``settings``
            (``PairwiseJudge(backend, order="both")``); checked like the settings themselves.

    Raises:
        OcrNotInstalledError: the settings ask for OCR evidence and the ``ocr`` extra is missing.
    """

    def __init__(
        self,
        backend: VLMBackend | None,
        settings: JudgeSettings | None = None,
        *,
        rubric=None,
        ocr_reader: OcrReader | None = None,
        **changes: Any,
    ):
        self.backend: VLMBackend = backend if backend is not None else NoModel()
        self.settings: JudgeSettings = JudgeSettings.of(settings, **changes)
        self.rubric = rubric
        self.ocr_reader: OcrReader | None = None
        if "ocr" in self.settings.evidence:
            from arrpo.evidence.ocr import shared_reader

            self.ocr_reader = ocr_reader if ocr_reader is not None else shared_reader()
        self._evidence_memo: OrderedDict[tuple[str, ...], OcrEvidence | None] = OrderedDict()

    def identity(self) -> dict[str, Any]:
        """What decides whether this judge's earlier verdicts may be reused: every setting (the
        prompt layout and the evidence settings included), the hash of the prompt templates and,
        with OCR evidence, the OCR engine. The caller adds the model and the rubric."""
        identity: dict[str, Any] = {**self.settings.model_dump(mode="json"), "prompts_sha256": judge_prompts_sha256()}
        if self.ocr_reader is not None:
            identity["ocr_engine"] = self.ocr_reader.engine_name
        return identity

    # ----------------------------------------------------------------- requests
    def orders_for(self, comparison: Comparison) -> list[Order]:
        """The orders this judge will ask a comparison in."""
        if self.settings.order == "given":
            return ["AB"]
        if self.settings.order == "both":
            return ["AB", "BA"]
        return [random_order(comparison, self.settings.seed)]

    def build_messages(
        self, comparison: Comparison, order: Order, evidence: OcrEvidence | None = None
    ) -> list[Message]:
        """The chat messages for one order in the judge's ``prompt_layout`` (see the module
        docstring), with the block of ``evidence`` (``None``: no block)."""
        first, second = (
            (comparison.image_a, comparison.image_b)
            if order == "AB"
            else (comparison.image_b, comparison.image_a)
        )
        rubric = comparison.rubric or self.rubric
        words = {
            "task": comparison.task,
            "rubric": rubric.render() if rubric is not None else None,
            "prompt": comparison.prompt,
            "allow_ties": self.settings.allow_ties,
        }
        block = render_ocr_block(evidence, order)
        label_1, label_2 = IMAGE_LABELS[comparison.task]
        source: list = []
        if comparison.task == "edit" and comparison.source is not None:
            source = [SOURCE_LABEL, comparison.source]
        candidates = [label_1, first, label_2, second]
        if self.settings.prompt_layout == "cached":
            request = [render("judge", part="request", **words), *source, *candidates, *([block] if block else [])]
            return [Message.system(render("judge", part="instructions", **words)), Message.user(*request)]
        return [Message.user(*source, *candidates, render("judge", evidence=block, **words))]

    def build_request(self, comparison: Comparison, order: Order, evidence: OcrEvidence | None = None) -> VLMRequest:
        """The full request for one order (public so other backends and tests can inspect it)."""
        return self._request(self.build_messages(comparison, order, evidence))

    def _request(self, messages: Sequence[Message]) -> VLMRequest:
        return VLMRequest(
            messages=tuple(messages),
            temperature=self.settings.temperature,
            max_tokens=self.settings.max_tokens,
            json_schema=RANK_SCHEMA,
        )

    # ------------------------------------------------------------------ judging
    async def ask(self, comparison: Comparison, order: Order) -> OrderAnswer:
        """Ask one order; never raises for backend or model failures.

        An unexpected exception while asking or handling the answer becomes an ``invalid``
        answer naming it (only :class:`BackendUnavailable` propagates). Two byte-identical
        candidates are a ``tie`` without asking the model (or reading them): there is no preference
        to find, and a model would answer with its position bias. With OCR evidence the answer has
        ``ocr_policy`` applied (``answer.policy`` keeps what the model said); the evidence-only
        judge answers from the evidence and asks no model (``attempts=0``). Every path that judges
        (a verdict, eval's two orders, rubric verification) asks through here, so each gets the
        same judge and saves the same calls.
        """
        if identical_images(comparison):
            return OrderAnswer(order=order, winner="tie", reason=IDENTICAL_IMAGES, attempts=0)
        if self.settings.evidence_only:
            return _evidence_answer(order, await self.gather_evidence(comparison))
        asked: list[VLMRequest] = []
        try:
            answer = await self._ask(comparison, order, asked)
        except BackendUnavailable:
            raise
        except Exception as exc:  # a bug or a hostile answer must not end a batch
            for request in asked:  # an answer that crashed is never served again from the cache
                await forget_cached(self.backend, request)
            return OrderAnswer(order=order, winner="invalid",
                               invalid_reason=f"{FAILED_PREFIX}{exception_text(exc)}")
        return self._order_policy(answer, await self.gather_evidence(comparison))

    async def _ask(self, comparison: Comparison, order: Order, asked: list[VLMRequest]) -> OrderAnswer:
        gathered = await self.gather_evidence(comparison)
        messages = self.build_messages(comparison, order, gathered.ocr if gathered is not None else None)
        usage, latency, attempts, cached = Usage(), 0.0, 0, 0
        raw: str | None = None
        backend_failed = False
        parsed = RankAnswer(None, None, "not asked")
        for attempt in range(self.settings.parse_retries + 1):
            attempts += 1
            started = time.perf_counter()
            request = self._request(messages)
            asked.append(request)
            try:
                response = await self.backend.complete(request)
            except BackendUnavailable:
                raise  # a configuration problem, not a model answer: the caller must act
            except BackendError as exc:
                latency += time.perf_counter() - started
                parsed, backend_failed = RankAnswer(None, None, f"backend error: {_clipped(str(exc))}"), True
                break
            except Exception as exc:  # a backend bug must not take the run down
                latency += time.perf_counter() - started
                parsed = RankAnswer(None, None, f"backend failed: {exception_text(exc)}")
                backend_failed = True
                break
            latency += time.perf_counter() - started
            usage = usage + response.usage
            cached += 1 if response.cached is True else 0
            raw = response.text if isinstance(response.text, str) else None
            parsed = await self._parse(raw, request)
            if parsed.ok:
                break
            if response.finish_reason == "length":
                parsed = RankAnswer(None, parsed.reason, f"{parsed.error} (answer cut at max_tokens)")
            if attempt < self.settings.parse_retries:
                retry_text = render("judge_retry", problem=parsed.error, allow_ties=self.settings.allow_ties,
                                    task=comparison.task)
                echoed = valid_utf8(clip(raw or "", self.settings.max_answer_chars, keep="both"))
                messages = [*messages, Message.assistant(echoed), Message.user(retry_text)]
        return OrderAnswer(
            order=order,
            winner=_to_winner(parsed, order),
            raw=clip(raw, self.settings.max_answer_chars, keep="both") if raw is not None else None,
            reason=clip(parsed.reason, self.settings.max_answer_chars) if parsed.reason is not None else None,
            invalid_reason=parsed.error if not parsed.ok else None,
            backend_failed=backend_failed,
            latency_s=latency,
            usage=usage,
            attempts=attempts,
            cached=cached,
        )

    async def _parse(self, raw: str | None, request: VLMRequest) -> RankAnswer:
        """Parse one answer (in a worker thread when it is long). A parser exception is an
        unusable answer naming it, and the cached copy of that answer is dropped."""
        try:
            if raw is not None and len(raw) > PARSE_INLINE_CHARS:
                return await asyncio.to_thread(parse_rank_answer, raw, allow_ties=self.settings.allow_ties)
            return parse_rank_answer(raw, allow_ties=self.settings.allow_ties)
        except Exception as exc:
            await forget_cached(self.backend, request)
            return RankAnswer(None, None, f"the answer could not be parsed: {exception_text(exc)}")

    async def judge(self, comparison: Comparison) -> Verdict:
        """Judge one comparison under the order policy; never raises for a model's answer.

        An unexpected exception ends as an ``invalid`` verdict naming it (only
        :class:`BackendUnavailable` propagates). Two byte-identical candidates are a ``tie``
        without asking the model (see :meth:`ask`).
        """
        started = time.perf_counter()
        try:
            return await self._judge(comparison, started)
        except BackendUnavailable:
            raise
        except Exception as exc:  # one pair must never end a batch
            return Verdict.failed(exc, id=comparison.id, latency_s=time.perf_counter() - started)

    async def _judge(self, comparison: Comparison, started: float) -> Verdict:
        if identical_images(comparison):  # a tie without the model or OCR (see ask)
            verdict = await self._judge_by_model(comparison, started)
            verdict.prompt_layout = self.settings.prompt_layout
            return verdict
        evidence = await self.gather_evidence(comparison)
        if self.settings.evidence_only:
            return _decided_by_evidence(comparison, evidence, time.perf_counter() - started)
        verdict = await self._judge_by_model(comparison, started)
        verdict.prompt_layout = self.settings.prompt_layout
        if evidence is not None:
            verdict = self._with_evidence(verdict, evidence)
        return verdict

    async def _judge_by_model(self, comparison: Comparison, started: float) -> Verdict:
        return await judge_in_orders(
            self, comparison, self.orders_for(comparison), self.settings.on_disagree, started=started
        )

    # ----------------------------------------------------------------- evidence
    async def gather_evidence(self, comparison: Comparison) -> VerdictEvidence | None:
        """The evidence this judge shows and decides with for ``comparison`` (``None``: it uses
        none), without the policy's outcome; never raises.

        Gathered once per comparison: both orders, and the comparison with A and B exchanged
        (eval's reverse order), reuse it, and reads are cached by image hash. A prompt that asks
        for no text gives ``ocr=None`` (no OCR runs); a failure gives ``unavailable``.
        """
        if self.ocr_reader is None:
            return None
        from arrpo.evidence.decide import decide_pair  # with numpy: only judges that use evidence
        from arrpo.evidence.gather import gather_ocr_evidence

        key = (comparison.task, comparison.prompt, comparison.source.sha256 if comparison.source else "")
        ab, ba = (*key, comparison.image_a.sha256, comparison.image_b.sha256), \
            (*key, comparison.image_b.sha256, comparison.image_a.sha256)
        if ab in self._evidence_memo:
            found = self._evidence_memo[ab]
        elif ba in self._evidence_memo:
            swapped = self._evidence_memo[ba]
            found = swapped.swapped() if swapped is not None else None
        else:
            try:
                found = await gather_ocr_evidence(comparison, self.ocr_reader)
            except Exception as exc:  # a bug in the evidence tools must not take the judging down
                reason = f"OCR evidence unavailable: {exception_text(exc)}"
                return VerdictEvidence(unavailable=reason,
                                       decision=EvidenceDecision(winner="invalid", invalid_reason=reason))
            self._evidence_memo[ab] = found
            while len(self._evidence_memo) > EVIDENCE_MEMO_SIZE:
                self._evidence_memo.popitem(last=False)
        decision = decide_pair(found)
        unavailable = decision.invalid_reason if found is not None and found.unavailable else None
        return VerdictEvidence(ocr=found, unavailable=unavailable, decision=decision)

    def _order_policy(self, answer: OrderAnswer, evidence: VerdictEvidence | None) -> OrderAnswer:
        """One order's answer with ``ocr_policy`` applied (no OCR evidence: unchanged)."""
        from arrpo.evidence.decide import apply_ocr_policy

        if evidence is None or evidence.ocr is None or evidence.decision is None:
            return answer
        outcome = apply_ocr_policy(self.settings.ocr_policy, answer.winner, evidence.decision)
        if not outcome.changed:
            return answer.model_copy(update={"policy": outcome})
        return answer.model_copy(update={"winner": outcome.winner, "invalid_reason": None, "policy": outcome})

    def _with_evidence(self, verdict: Verdict, evidence: VerdictEvidence) -> Verdict:
        """The verdict with the evidence recorded and ``ocr_policy`` applied to what the model
        said in all its orders (so ``tiebreak`` also settles orders that disagree); a prompt that
        asks for no text, or evidence that could not be gathered, changes nothing."""
        from arrpo.evidence.decide import apply_ocr_policy

        if evidence.ocr is None or evidence.decision is None:
            return verdict.model_copy(update={"evidence": evidence})
        said = [a.model_copy(update={"winner": a.policy.vlm_winner}) if a.policy else a for a in verdict.answers]
        if len(said) == 1:
            winner, agree, invalid = said[0].winner, None, said[0].invalid_reason
        else:
            winner, agree, invalid = combine_orders(said[0], said[1], self.settings.on_disagree)
        outcome = apply_ocr_policy(self.settings.ocr_policy, winner, evidence.decision, orders_agree=agree)
        evidence = evidence.model_copy(update={"policy": outcome, "decided_by": outcome.decided_by})
        if outcome.decided_by == "vlm":
            return verdict.model_copy(update={"winner": winner, "orders_agree": agree, "evidence": evidence,
                                              "invalid_reason": invalid if winner == "invalid" else None})
        return verdict.model_copy(update={
            "winner": outcome.winner, "orders_agree": agree, "invalid_reason": None, "evidence": evidence,
            "reason": f"decided by OCR evidence ({outcome.note}): {evidence.decision.reason}",
        })

    async def score_samples(self, prompt: str, images: Sequence[ImageData]) -> list[SampleScore] | None:
        """The per-sample OCR score of each image for ``prompt`` (1 − normalised edit distance;
        ``score=None``: no signal), for hosts that combine rewards per sample; ``None`` when this
        judge uses no OCR evidence. Reads are cached, so images already judged cost nothing."""
        if self.ocr_reader is None:
            return None
        from arrpo.evidence.gather import score_sample

        return list(await asyncio.gather(*(score_sample(prompt, image, self.ocr_reader) for image in images)))

    async def judge_many(
        self,
        comparisons: Iterable[Comparison],
        *,
        max_pending: int = 256,
        progress: bool = False,
        on_result: Callable[[int, Verdict], Awaitable[None] | None] | None = None,
    ) -> list[Verdict]:
        """Judge many comparisons concurrently; results in input order.

        ``max_pending`` bounds comparisons in progress (the backend's own limit bounds requests);
        ``on_result(index, verdict)`` is called as each finishes (e.g. to append to a file).
        """
        items = list(comparisons)
        results: list[Verdict | None] = [None] * len(items)
        gate = asyncio.Semaphore(max(1, max_pending))
        bar = ProgressBar(len(items)) if progress else None

        async def run(index: int, comparison: Comparison) -> None:
            async with gate:
                verdict = await self.judge(comparison)
            results[index] = verdict
            if on_result is not None:
                maybe = on_result(index, verdict)
                if asyncio.iscoroutine(maybe):
                    await maybe
            if bar is not None:
                bar.advance(verdict)

        try:
            await asyncio.gather(*(run(i, c) for i, c in enumerate(items)))
        finally:
            if bar is not None:
                bar.close()
        return [v for v in results if v is not None]

    def judge_sync(self, comparison: Comparison) -> Verdict:
        """Blocking :meth:`judge` (runs its own event loop)."""
        return run_sync(self.judge(comparison))

    def judge_many_sync(self, comparisons: Iterable[Comparison], **kwargs) -> list[Verdict]:
        """Blocking :meth:`judge_many`."""
        return run_sync(self.judge_many(comparisons, **kwargs))


def _evidence_answer(order: Order, evidence: VerdictEvidence | None) -> OrderAnswer:
    """The evidence-only judge's answer for one order: the evidence's decision (in A/B terms,
    the same in every order), no model asked."""
    if evidence is None or evidence.decision is None:  # the settings guarantee evidence
        return OrderAnswer(order=order, winner="invalid", attempts=0,
                           invalid_reason="the evidence-only judge has no evidence to decide from")
    decision = evidence.decision
    return OrderAnswer(order=order, winner=decision.winner, reason=decision.reason or None, attempts=0,
                       invalid_reason=decision.invalid_reason if decision.winner == "invalid" else None)


def _decided_by_evidence(comparison: Comparison, evidence: VerdictEvidence | None, latency_s: float) -> Verdict:
    """The evidence-only judge's verdict: the evidence's own decision, no model asked."""
    if evidence is None or evidence.decision is None:  # the settings guarantee evidence
        return Verdict(id=comparison.id, winner="invalid", latency_s=latency_s,
                       invalid_reason="the evidence-only judge has no evidence to decide from")
    decision = evidence.decision
    return Verdict(
        id=comparison.id,
        winner=decision.winner,
        reason=decision.reason or None,
        invalid_reason=decision.invalid_reason if decision.winner == "invalid" else None,
        latency_s=latency_s,
        evidence=evidence.model_copy(update={"decided_by": "evidence"}),
    )


def _clipped(text: str, limit: int = 500) -> str:
    return valid_utf8(clip(text, limit))


def _to_winner(parsed: RankAnswer, order: Order) -> Winner:
    if parsed.choice is None:
        return "invalid"
    if parsed.choice == "tie":
        return "tie"
    first_is_a = order == "AB"
    return "A" if (parsed.choice == "1") == first_is_a else "B"


class ProgressBar:
    """Progress of a batch of judgements, counting verdicts by winner."""

    def __init__(self, total: int):
        from arrpo.progress import CountingProgress

        self._bar = CountingProgress(total, "judging", ("A", "B", "tie", "invalid"))

    def advance(self, verdict: Verdict) -> None:
        self._bar.advance(verdict.winner)

    def close(self) -> None:
        self._bar.close()
