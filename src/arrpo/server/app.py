"""The reward service as a FastAPI application: ``create_app(backend, config)``.

Endpoints: ``POST /v1/compare``, ``POST /v1/group_rewards``, ``GET /health``, ``GET /metrics``,
and the OpenAPI docs at ``/docs`` (schema at ``/openapi.json``). The judge calls go through one
backend whose own concurrency limit bounds the load on the VLM; the admission gate in front of it
answers 503 with ``Retry-After`` when the service is saturated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPBearer

from arrpo._version import __version__
from arrpo.images import ImageData
from arrpo.judge import PairwiseJudge
from arrpo.rewards import group_rewards, plan_pairs
from arrpo.rubrics.write import PromptRubricWriter
from arrpo.schema import Comparison, task_for, task_source_problem
from arrpo.server.auth import AuthGuard
from arrpo.server.config import ServiceConfig
from arrpo.server.errors import ApiError, Utf8JSONResponse, install_error_handlers
from arrpo.server.inputs import decode_image_field
from arrpo.server.limits import AdmissionGate, RequestGuard
from arrpo.server.metrics import CONTENT_TYPE, MetricsMiddleware, ServiceMetrics
from arrpo.server.protocol import (
    CompareRequest,
    CompareResponse,
    EndpointHealth,
    ErrorResponse,
    GroupRewardsRequest,
    GroupRewardsResponse,
    Health,
    PairVerdict,
    judge_calls,
)
from arrpo.server.rubrics import RubricSource
from arrpo.step_monitor import StepMonitor, masked_causes
from arrpo.tournament import comparisons_per_group, run_tournament
from arrpo.vlm.base import NoModel, VLMBackend
from arrpo.vlm.pool import endpoint_stats
from arrpo.vlm.wrappers import Limited, Metered
from arrpo.vocab import OrderPolicy, Pairing, choices

log = logging.getLogger("arrpo.server")

_ERRORS = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed JSON.",
        401: "Missing or malformed bearer token.",
        403: "Wrong bearer token.",
        413: "Body, image count or image pixels over the limit.",
        415: "Body is not JSON.",
        422: "Missing or invalid fields (reward parameters included), bad base64, not an image, a path "
        "where an image belongs.",
        501: "Requested rubric not available on this server.",
        502: "A prompt rubric could not be written.",
        503: "Saturated: retry after the Retry-After header's seconds.",
    }.items()
}


def backend_concurrency(backend: VLMBackend) -> int | None:
    """The ``Limited`` concurrency somewhere in a wrapper stack, if any."""
    seen = 0
    while backend is not None and seen < 16:
        if isinstance(backend, Limited):
            return backend.max_concurrency
        backend = getattr(backend, "inner", None)
        seen += 1
    return None


class RewardService:
    """The state behind the endpoints: judges, rubrics, admission gate, metrics."""

    def __init__(self, backend: VLMBackend | None, config: ServiceConfig, writer: PromptRubricWriter | None):
        if backend is None and config.judge.asks_model:
            raise ValueError("the reward service needs a VLM backend unless its judge is evidence_only")
        backend = backend if backend is not None else NoModel()
        self.config = config
        self.backend = backend if isinstance(backend, Metered) else Metered(backend)
        self.metrics = ServiceMetrics()
        self.gate = AdmissionGate(config.max_pending, backend_concurrency(backend))
        self.rubrics = RubricSource(
            config.task_rubrics, writer, config.prompt_rubric_cache_size,
            on_cache=self.metrics.count_rubric_lookup,
        )
        #: one judge per order policy: a request's ``order`` replaces only that setting
        self.judges = {
            order: PairwiseJudge(self.backend, config.judge, order=order) for order in choices(OrderPolicy)
        }
        totals = self.backend.totals
        self.metrics.backend_counters.update({
            "arrpo_backend_requests_total": ("Calls to the VLM backend.", lambda: totals.requests),
            "arrpo_backend_errors_total": ("Backend calls that failed (after retries).", lambda: totals.errors),
            "arrpo_backend_cache_hits_total": ("Backend calls answered from the response cache.", lambda: totals.cached),
            "arrpo_backend_tokens_total": ("Tokens used by backend calls.", lambda: totals.usage.total_tokens),
        })
        self.metrics.gauges.update({
            "arrpo_in_flight_calls": lambda: self.gate.in_use,
            "arrpo_capacity_calls": lambda: self.gate.capacity,
        })
        self.metrics.endpoint_stats = lambda: endpoint_stats(self.backend)
        #: dead windows of ``/v1/group_rewards`` (most samples masked) warn in the service's log
        self.monitor = StepMonitor(max_dead_steps=0, what="window of group requests")

    # --------------------------------------------------------------- helpers
    @contextlib.asynccontextmanager
    async def admitted(self, units: int) -> AsyncIterator[None]:
        if not self.gate.try_acquire(units):
            self.metrics.count_rejected("saturated")
            seconds = self.gate.retry_after()
            raise ApiError(
                503, "saturated",
                f"the service is at capacity ({self.gate.in_use} judge calls in progress); "
                f"retry after {seconds} s",
                {"Retry-After": str(seconds)},
            )
        started = time.perf_counter()
        try:
            yield
        finally:
            self.gate.release(units, time.perf_counter() - started)

    def task_of(self, body: CompareRequest | GroupRewardsRequest) -> str:
        task = task_for(body.task, body.source)
        problem = task_source_problem(task, body.source is not None)
        if problem is not None:
            raise ApiError(422, "invalid_request", f"source: {problem}")
        if len(body.prompt) > self.config.max_prompt_chars:
            raise ApiError(
                422, "invalid_request",
                f"prompt: {len(body.prompt):,} characters, over the {self.config.max_prompt_chars:,} limit",
            )
        if body.rubric_inline is not None:
            size = sum(len(t.theme) + sum(len(tip) for tip in t.tips) for t in body.rubric_inline.themes)
            if size > self.config.max_rubric_chars:
                raise ApiError(
                    422, "invalid_request",
                    f"rubric_inline: {size:,} characters of themes and tips, over the "
                    f"{self.config.max_rubric_chars:,} limit; send a shorter rubric",
                )
        return task

    async def decode(self, fields: dict[str, str | None]) -> dict[str, ImageData | None]:
        """Decode every image field off the event loop (decoding is CPU work)."""
        config = self.config

        def work() -> dict[str, ImageData | None]:
            return {
                name: None if value is None else decode_image_field(
                    name, value, max_image_pixels=config.max_image_pixels, max_pixels=config.max_pixels
                )
                for name, value in fields.items()
            }

        return await asyncio.to_thread(work)

    # ------------------------------------------------------------- endpoints
    async def compare(self, body: CompareRequest) -> CompareResponse:
        task = self.task_of(body)
        order = body.order or self.config.judge.order
        async with self.admitted(judge_calls(order, 1)):
            images = await self.decode({"image_a": body.image_a, "image_b": body.image_b, "source": body.source})
            rubric, info = await self.rubrics.resolve(
                body.rubric, task, body.prompt, body.rubric_inline, images["source"]
            )
            comparison = Comparison(
                task=task, prompt=body.prompt, image_a=images["image_a"], image_b=images["image_b"],
                source=images["source"], rubric=rubric, id=body.id,
            )
            verdict = await self.judges[order].judge(comparison)
        self.metrics.count_verdict(verdict.winner)
        return CompareResponse(id=body.id, verdict=verdict, rubric=info)

    def pairing_of(self, body: GroupRewardsRequest) -> Pairing:
        """The request's pairing, or the server's default; 422 when it does not fit the request."""
        pairing = body.pairing or self.config.pairing
        n = len(body.images)
        whose = "" if body.pairing else " (the server's default pairing)"
        if pairing == "random_pairs" and n % 2:
            raise ApiError(422, "invalid_request", f"pairing: random_pairs{whose} needs an even number of images, got {n}")
        if body.tournament_rounds is not None and pairing != "tournament":
            raise ApiError(422, "invalid_request",
                           f"tournament_rounds: applies to pairing 'tournament' only, not {pairing!r}{whose}")
        return pairing

    async def group_rewards(self, body: GroupRewardsRequest) -> GroupRewardsResponse:
        task = self.task_of(body)
        n = len(body.images)
        if n > self.config.max_images:
            raise ApiError(
                413, "too_many_images",
                f"images: {n} images, over the limit of {self.config.max_images} per group",
            )
        order = body.order or self.config.judge.order
        pairing = self.pairing_of(body)
        most = comparisons_per_group(n, pairing, rounds=body.tournament_rounds)  # a tournament may stop early
        async with self.admitted(judge_calls(order, most)):
            fields: dict[str, str | None] = {f"images.{k}": v for k, v in enumerate(body.images)}
            fields["source"] = body.source
            decoded = await self.decode(fields)
            images = [decoded[f"images.{k}"] for k in range(n)]
            rubric, info = await self.rubrics.resolve(
                body.rubric, task, body.prompt, body.rubric_inline, decoded["source"]
            )
            judge = self.judges[order]

            async def judge_pair(i: int, j: int):
                return await judge.judge(Comparison(
                    task=task, prompt=body.prompt, image_a=images[i], image_b=images[j],
                    source=decoded["source"], rubric=rubric, id=f"{body.id or 'group'}:{i}-{j}",
                ))

            seed = f"{body.seed or 0}|{body.id or ''}|{body.prompt}"  # the same request is paired the same way
            if pairing == "tournament":
                played = await run_tournament(n, judge_pair, seed=seed, rounds=body.tournament_rounds,
                                              on_bad_verdict=body.on_bad_verdict)
                pairs, verdicts = played.pairs, played.results
            else:
                pairs = plan_pairs(n, pairing, random.Random(seed))
                verdicts = list(await asyncio.gather(*(judge_pair(i, j) for i, j in pairs)))
            scores = await judge.score_samples(body.prompt, images)  # reads cached while judging
        for verdict in verdicts:
            self.metrics.count_verdict(verdict.winner)
        outcome = group_rewards(  # parameters were validated with the body (422)
            n, pairs, [v.winner for v in verdicts], preset=body.preset, win=body.win,
            lose=body.lose, scale=body.scale, on_bad_verdict=body.on_bad_verdict, pairing=pairing,
        )
        return GroupRewardsResponse(
            id=body.id, preset=body.preset, rewards=outcome.rewards, advantages=outcome.advantages,
            mask=outcome.mask, win_rates=outcome.win_rates, masked=outcome.masked,
            n_pairs=outcome.n_pairs, n_valid=outcome.n_valid, n_tie=outcome.n_tie,
            n_invalid=outcome.n_invalid, notes=outcome.notes, pairing=pairing,
            pairs=[PairVerdict(i=i, j=j, verdict=v) for (i, j), v in zip(pairs, verdicts, strict=True)],
            rubric=info, ocr_scores=None if scores is None else [s.score for s in scores],
        )

    def health(self) -> Health:
        return Health(
            status="ok", version=__version__, model=self.backend.model_id, in_flight=self.gate.in_use,
            capacity=self.gate.capacity, task_rubrics=sorted(self.config.task_rubrics),
            prompt_rubrics=self.rubrics.writer is not None, limits=self.config.limits(),
            endpoints=[EndpointHealth(**one.as_dict()) for one in endpoint_stats(self.backend)] or None,
        )


def create_app(
    backend: VLMBackend | None,
    config: ServiceConfig | None = None,
    *,
    prompt_rubric_writer: PromptRubricWriter | None = None,
    close_backend: bool = True,
) -> FastAPI:
    """Build the reward service around a VLM ``backend`` (usually from :func:`arrpo.vlm.build_backend`).

    Args:
        backend: the judge's backend; its ``Limited`` wrapper bounds concurrent VLM calls. ``None``
            for an evidence-only judge (``config.judge.evidence_only``), which asks no model
            (:func:`arrpo.vlm.settings.open_judge_backend` makes the choice).
        config: limits, defaults, token and task rubrics.
        prompt_rubric_writer: async ``(task, prompt, source) -> Rubric`` enabling ``rubric: "prompt"``.
        close_backend: close the backend when the application shuts down.
    """
    config = config or ServiceConfig()
    service = RewardService(backend, config, prompt_rubric_writer)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("arrpo reward service ready (%r)", config)
        yield
        log.info("arrpo reward service stopping")
        if close_backend:
            await service.backend.aclose()

    app = FastAPI(
        title="arrpo reward service",
        version=__version__,
        description="Rubric-conditioned pairwise VLM judgements and group rewards (ARR). "
        "JSON only; images as base64. See docs/serving.md.",
        lifespan=lifespan,
        default_response_class=Utf8JSONResponse,
    )
    app.state.service = service
    install_error_handlers(app)
    # outermost last: metrics see every answer; the token is checked before any body is read
    app.add_middleware(RequestGuard, max_body_bytes=config.max_body_bytes)
    app.add_middleware(AuthGuard, token=config.token)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)

    # AuthGuard (above) checks the token of every guarded path before a body is read; the bearer
    # dependency only declares the scheme in the OpenAPI document (it checks nothing)
    bearer = HTTPBearer(auto_error=False, description="Service token (required unless on loopback without one).")
    guarded = [Depends(bearer)]

    @app.post("/v1/compare", response_model=CompareResponse, responses=_ERRORS, dependencies=guarded)
    async def compare(body: CompareRequest) -> CompareResponse:
        """Judge one pair: which of image A and image B is better for the prompt."""
        return await service.compare(body)

    @app.post("/v1/group_rewards", response_model=GroupRewardsResponse, responses=_ERRORS, dependencies=guarded)
    async def group_rewards_endpoint(body: GroupRewardsRequest) -> GroupRewardsResponse:
        """Judge the pairs of a group (all pairs, a random matching or a tournament) and map the verdicts to per-image rewards."""
        response = await service.group_rewards(body)
        service.monitor.observe(len(response.mask), sum(not m for m in response.mask), masked_causes(response))
        return response

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        """Liveness and configuration summary (no auth)."""
        return service.health()

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=guarded)
    async def metrics() -> PlainTextResponse:
        """Prometheus text exposition format."""
        return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)

    # Ways in for hosts that cannot send whole groups (docs/serving.md): groups gathered member by
    # member (verl-omni), and Flow-Factory's remote reward protocol under /flow-factory/<k>.
    from arrpo.server.flow_factory import mount_flow_factory
    from arrpo.server.gather import mount_gathering

    mount_gathering(app, service, guarded)
    mount_flow_factory(app, service)
    return app
