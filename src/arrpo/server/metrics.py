"""Service metrics in the Prometheus text exposition format (no client library needed).

Counters and histograms live in plain dicts keyed by label values; :meth:`ServiceMetrics.render`
writes them out. Everything runs on the server's event loop, so no locking is needed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable

#: Request latency buckets in seconds (judge calls take from ~0.1 s to a minute).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ENDPOINTS = ("/v1/compare", "/v1/group_rewards", "/health", "/metrics")


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Histogram:
    """A cumulative-bucket histogram per label set."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.buckets = buckets
        self.counts: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * len(buckets))
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)
        self.totals: dict[tuple[str, ...], int] = defaultdict(int)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        counts = self.counts[labels]
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                counts[index] += 1
        self.sums[labels] += value
        self.totals[labels] += 1


class ServiceMetrics:
    """Requests, latency, verdict outcomes, rejections and backend statistics."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[tuple[str, str], int] = defaultdict(int)  # (endpoint, status)
        self.latency = Histogram()
        self.verdicts: dict[str, int] = defaultdict(int)
        self.rejected: dict[str, int] = defaultdict(int)
        self.rubric_cache: dict[str, int] = defaultdict(int)  # hit / miss
        self.gauges: dict[str, Callable[[], float]] = {}
        self.backend_counters: dict[str, tuple[str, Callable[[], float]]] = {}

    # ---------------------------------------------------------------- recording
    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, str(status))] += 1
        self.latency.observe((endpoint,), seconds)

    def count_verdict(self, winner: str) -> None:
        self.verdicts[winner] += 1

    def count_rejected(self, reason: str) -> None:
        self.rejected[reason] += 1

    # ---------------------------------------------------------------- rendering
    def render(self) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family("arrpo_requests_total", "counter", "HTTP requests answered, by endpoint and status.")
        for (endpoint, status), value in sorted(self.requests.items()):
            out.append(f"arrpo_requests_total{_labels(('endpoint', 'status'), (endpoint, status))} {value}")

        family("arrpo_request_duration_seconds", "histogram", "Time to answer a request.")
        for labels in sorted(self.latency.totals):
            counts = self.latency.counts[labels]
            for bound, count in zip(self.latency.buckets, counts, strict=True):
                lab = _labels(("endpoint", "le"), (*labels, _number(bound)))
                out.append(f"arrpo_request_duration_seconds_bucket{lab} {count}")
            lab = _labels(("endpoint", "le"), (*labels, "+Inf"))
            out.append(f"arrpo_request_duration_seconds_bucket{lab} {self.latency.totals[labels]}")
            lab = _labels(("endpoint",), labels)
            out.append(f"arrpo_request_duration_seconds_sum{lab} {_number(self.latency.sums[labels])}")
            out.append(f"arrpo_request_duration_seconds_count{lab} {self.latency.totals[labels]}")

        family("arrpo_verdicts_total", "counter", "Verdicts returned, by outcome (A, B, tie, invalid).")
        for winner in ("A", "B", "tie", "invalid"):
            out.append(f'arrpo_verdicts_total{{winner="{winner}"}} {self.verdicts.get(winner, 0)}')

        family("arrpo_rejected_total", "counter", "Requests refused before judging, by reason.")
        for reason in sorted(set(self.rejected) | {"saturated"}):
            out.append(f'arrpo_rejected_total{{reason="{reason}"}} {self.rejected.get(reason, 0)}')

        family("arrpo_prompt_rubric_cache_total", "counter", "Prompt-level rubric lookups (hit/miss).")
        for result in ("hit", "miss"):
            out.append(f'arrpo_prompt_rubric_cache_total{{result="{result}"}} {self.rubric_cache.get(result, 0)}')

        for name, (help_text, read) in sorted(self.backend_counters.items()):
            family(name, "counter", help_text)
            out.append(f"{name} {_number(read())}")
        for name, read in sorted(self.gauges.items()):
            family(name, "gauge", name.replace("_", " "))
            out.append(f"{name} {_number(read())}")

        family("arrpo_uptime_seconds", "gauge", "Seconds since the service started.")
        out.append(f"arrpo_uptime_seconds {_number(round(time.time() - self.started, 3))}")
        return "\n".join(out) + "\n"


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
