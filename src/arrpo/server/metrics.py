"""Service metrics in the Prometheus text exposition format, through ``prometheus_client``.

Every service has its own :class:`prometheus_client.CollectorRegistry` (several apps may live in
one process, e.g. in tests). Metric names are stable: dashboards rely on them.

* ``arrpo_requests_total{endpoint,status}``, ``arrpo_request_duration_seconds{endpoint}`` (histogram)
* ``arrpo_verdicts_total{winner}``, ``arrpo_rejected_total{reason}``,
  ``arrpo_prompt_rubric_cache_total{result}``
* backend counters (``arrpo_backend_requests_total`` ...) and gauges (``arrpo_in_flight_calls`` ...)
  read from callables when scraped, and ``arrpo_uptime_seconds``.
* per VLM endpoint (label ``endpoint``: its base URL), read when scraped:
  ``arrpo_vlm_endpoint_requests_total``, ``arrpo_vlm_endpoint_ok_total``,
  ``arrpo_vlm_endpoint_failures_total{endpoint,kind}``, ``arrpo_vlm_endpoint_cooldowns_total``,
  ``arrpo_vlm_endpoint_in_flight``, ``arrpo_vlm_endpoint_up`` (1 in rotation, 0 cooling or probing),
  ``arrpo_vlm_endpoint_latency_seconds`` (summary of answered calls: ``_count``, ``_sum``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

if TYPE_CHECKING:
    from arrpo.vlm.pool import EndpointStats

#: Request latency buckets in seconds (judge calls take from ~0.1 s to a minute).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ENDPOINTS = ("/v1/compare", "/v1/group_rewards", "/health", "/metrics")
#: Content type of the exposition format written by :meth:`ServiceMetrics.render`.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ReadOnScrape:
    """A collector reporting values read from callables at scrape time (backend totals, gauges)."""

    def __init__(self, metrics: ServiceMetrics):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, read) in sorted(self.metrics.backend_counters.items()):
            # prometheus_client appends "_total" to counter samples
            family = CounterMetricFamily(name.removesuffix("_total"), help_text)
            family.add_metric([], float(read()))
            yield family
        for name, read in sorted(self.metrics.gauges.items()):
            gauge = GaugeMetricFamily(name, name.replace("_", " "))
            gauge.add_metric([], float(read()))
            yield gauge
        uptime = GaugeMetricFamily("arrpo_uptime_seconds", "Seconds since the service started.")
        uptime.add_metric([], round(time.time() - self.metrics.started, 3))
        yield uptime
        if self.metrics.endpoint_stats is not None:
            yield from endpoint_families(self.metrics.endpoint_stats())


def endpoint_families(stats: Sequence[EndpointStats]) -> Iterator[Metric]:
    """The per-endpoint metric families of a backend's endpoint pool, labelled by endpoint URL."""
    label = ["endpoint"]
    families = {
        "requests": CounterMetricFamily("arrpo_vlm_endpoint_requests", "Calls sent to the VLM endpoint.", labels=label),
        "ok": CounterMetricFamily("arrpo_vlm_endpoint_ok", "Calls the VLM endpoint answered.", labels=label),
        "cooldowns": CounterMetricFamily("arrpo_vlm_endpoint_cooldowns", "Times the VLM endpoint was taken "
                                         "out of rotation after a failure.", labels=label),
        "in_flight": GaugeMetricFamily("arrpo_vlm_endpoint_in_flight", "Calls in flight on the VLM endpoint.",
                                       labels=label),
        "up": GaugeMetricFamily("arrpo_vlm_endpoint_up", "1 when the VLM endpoint is in rotation, 0 while it "
                                "cools down or is probed.", labels=label),
    }
    failures = CounterMetricFamily("arrpo_vlm_endpoint_failures", "Failed calls to the VLM endpoint, by kind.",
                                   labels=["endpoint", "kind"])
    latency = SummaryMetricFamily("arrpo_vlm_endpoint_latency_seconds", "Seconds of the VLM endpoint's "
                                  "answered calls.", labels=label)
    for one in stats:
        for name in ("requests", "ok", "cooldowns", "in_flight"):
            families[name].add_metric([one.endpoint], float(getattr(one, name)))
        families["up"].add_metric([one.endpoint], 1.0 if one.state == "up" else 0.0)
        for kind, count in sorted(one.failures.items()):
            failures.add_metric([one.endpoint, kind], float(count))
        latency.add_metric([one.endpoint], count_value=one.ok, sum_value=one.latency_sum_s)
    yield from families.values()
    yield failures
    yield latency


class ServiceMetrics:
    """Requests, latency, verdict outcomes, rejections and backend statistics."""

    def __init__(self) -> None:
        self.started = time.time()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("arrpo_requests_total", "HTTP requests answered, by endpoint and status.",
                                ("endpoint", "status"), registry=self.registry)
        self.latency = Histogram("arrpo_request_duration_seconds", "Time to answer a request.", ("endpoint",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.verdicts = Counter("arrpo_verdicts_total", "Verdicts returned, by outcome (A, B, tie, invalid).",
                                ("winner",), registry=self.registry)
        self.rejected = Counter("arrpo_rejected_total", "Requests refused before judging, by reason.",
                                ("reason",), registry=self.registry)
        self.rubric_cache = Counter("arrpo_prompt_rubric_cache_total", "Prompt-level rubric lookups (hit/miss).",
                                    ("result",), registry=self.registry)
        for winner in ("A", "B", "tie", "invalid"):
            self.verdicts.labels(winner)
        self.rejected.labels("saturated")
        for result in ("hit", "miss"):
            self.rubric_cache.labels(result)
        #: name → (help, read): counters read at scrape time.
        self.backend_counters: dict[str, tuple[str, Callable[[], float]]] = {}
        #: name → read: gauges read at scrape time.
        self.gauges: dict[str, Callable[[], float]] = {}
        #: The backend's per-endpoint counts, read at scrape time (None: no endpoint pool).
        self.endpoint_stats: Callable[[], Sequence[EndpointStats]] | None = None
        self.registry.register(_ReadOnScrape(self))

    # ---------------------------------------------------------------- recording
    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def count_verdict(self, winner: str) -> None:
        self.verdicts.labels(winner if winner in ("A", "B", "tie") else "invalid").inc()

    def count_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def count_rubric_lookup(self, result: str) -> None:
        self.rubric_cache.labels(result).inc()

    # ---------------------------------------------------------------- rendering
    def render(self) -> str:
        """The exposition text of every metric."""
        return generate_latest(self.registry).decode("utf-8")


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request and counting it by endpoint and status."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        started = time.perf_counter()
        status = 500

        async def recording_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.observe_request(endpoint, status, time.perf_counter() - started)
