"""One model served by several endpoints: least-loaded routing, cooldown and failover.

:class:`EndpointPool` stands where one backend would, inside the standard wrappers::

    Metered → Cached → Retrying → Limited(n × c) → EndpointPool(c each) → one backend per endpoint

* **Routing.** A request goes to the endpoint with the fewest requests in flight (ties: the one
  that has started the fewest so far, then the first listed), never beyond ``max_concurrency``
  in flight on one endpoint: every endpoint gets the same concurrency.
* **Failure.** A retryable error (connection refused or reset, timeout, 5xx, 429, a body that is
  not a chat completion) is the endpoint's fault: it cools down (1 s, doubling per failed probe,
  at most 30 s; a ``Retry-After`` is honoured) and the request moves at once to another endpoint,
  in the same call. After the cooldown the next request it gets is a probe (one at a time); its
  success brings the endpoint back, its failure doubles the cooldown. A non-retryable error (a
  4xx about the request) is not the endpoint's fault: it is raised as is, and counts as proof the
  endpoint is up.
* **Composition with** :class:`~arrpo.vlm.wrappers.Retrying`. Failover happens inside one call of
  the pool, so one dead endpoint never uses the caller's retry budget. The pool gives an error
  back to the retry wrapper only when no endpoint can take the request now: every one failed for
  it, or the rest are cooling down. That error is retryable with ``retry_after`` = the time until
  the first endpoint comes back, so each retry the budget pays for is one more round of probes;
  when the budget is spent the caller gets a :class:`BackendError`.
* **One answer per request.** The pool returns the first answer it gets, once; the cache above it
  is keyed by the pool's ``model_id``, which does not say which endpoint answered.

With one endpoint nothing cools down (there is nowhere to move a request; the retry wrapper's
backoff is the only pause, as without a pool) and the pool only counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from arrpo.vlm.base import BackendError, VLMBackend, VLMRequest, VLMResponse
from arrpo.vlm.wrappers import add_retries, find_layer
from arrpo.vocab import BackendFault, EndpointState

log = logging.getLogger(__name__)

#: Seconds an endpoint cools down after its first failure; doubled by each failed probe.
BASE_COOLDOWN_S = 1.0
#: The longest cooldown, in seconds.
MAX_COOLDOWN_S = 30.0
#: Shortest ``retry_after`` the pool asks for when every endpoint is cooling down.
MIN_RETRY_AFTER_S = 0.01

def fault_of(error: BackendError) -> BackendFault:
    """How ``error`` counts against the endpoint that raised it (``rejected``: not at all)."""
    if not error.retryable:
        return "rejected"
    if error.fault is not None:
        return error.fault
    if error.status == 429:
        return "rate_limited"
    if error.status == 408:
        return "timeout"
    if error.status is not None:
        return "server_error"
    return "other"


@dataclass(frozen=True)
class EndpointStats:
    """One endpoint's counts at one moment (:meth:`EndpointPool.stats`).

    ``requests`` counts calls started on it, ``ok`` those answered, ``failures`` the others by
    :data:`~arrpo.vocab.BackendFault` (``rejected`` included: the request's fault), ``cooldowns``
    how often it was taken out of rotation; ``mean_latency_s`` is over the answered calls.
    """

    endpoint: str
    state: EndpointState
    in_flight: int
    requests: int
    ok: int
    failures: dict[str, int]
    cooldowns: int
    cooling_for_s: float
    latency_sum_s: float

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_sum_s / self.ok if self.ok else None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, for ``/health``."""
        return {
            "endpoint": self.endpoint, "state": self.state, "in_flight": self.in_flight,
            "requests": self.requests, "ok": self.ok, "failures": dict(self.failures),
            "cooldowns": self.cooldowns, "cooling_for_s": round(self.cooling_for_s, 3),
            "mean_latency_s": None if self.mean_latency_s is None else round(self.mean_latency_s, 6),
        }


@dataclass(eq=False)
class _Endpoint:
    """The pool's live record of one endpoint."""

    name: str
    backend: VLMBackend
    index: int
    in_flight: int = 0
    requests: int = 0
    ok: int = 0
    failures: Counter = field(default_factory=Counter)
    cooldowns: int = 0
    latency_sum_s: float = 0.0
    streak: int = 0  # failed rounds in a row; 0: up
    cooling_until: float = 0.0
    probing: bool = False
    last_error: str = ""

    def ready(self, now: float) -> bool:
        """Up, or cooled down with no probe out (the next request is the probe)."""
        return self.streak == 0 or (now >= self.cooling_until and not self.probing)

    def state(self, now: float) -> EndpointState:
        if self.streak == 0:
            return "up"
        return "cooling" if now < self.cooling_until else "probing"


class EndpointPool:
    """Several backends serving one model, used as one backend (see the module docstring).

    Args:
        backends: endpoint name (its URL) → its backend, in the order given by the user.
        max_concurrency: requests in flight on each endpoint at most.
        model_id: the pool's model id (the cache key's model part); default: the backends' own,
            which must then agree.
        base_cooldown, max_cooldown: the first and the longest cooldown in seconds.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        backends: Mapping[str, VLMBackend],
        *,
        max_concurrency: int,
        model_id: str | None = None,
        base_cooldown: float = BASE_COOLDOWN_S,
        max_cooldown: float = MAX_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not backends:
            raise ValueError("an endpoint pool needs at least one endpoint")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        ids = {backend.model_id for backend in backends.values()}
        if model_id is None and len(ids) > 1:
            raise ValueError(f"the endpoints' model ids differ ({sorted(ids)}); pass the pool's model_id")
        self._model_id = model_id or ids.pop()
        self._endpoints = [_Endpoint(name, backend, index) for index, (name, backend) in enumerate(backends.items())]
        self.max_concurrency = max_concurrency
        self.base_cooldown = base_cooldown
        self.max_cooldown = max(max_cooldown, base_cooldown)
        self._clock = clock
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def endpoints(self) -> list[str]:
        """The endpoints' names, in the order given."""
        return [endpoint.name for endpoint in self._endpoints]

    @property
    def backends(self) -> dict[str, VLMBackend]:
        """Endpoint name → its backend."""
        return {endpoint.name: endpoint.backend for endpoint in self._endpoints}

    def stats(self) -> list[EndpointStats]:
        """A snapshot of every endpoint's counts, in the order given."""
        now = self._clock()
        return [
            EndpointStats(
                endpoint=e.name, state=e.state(now), in_flight=e.in_flight, requests=e.requests, ok=e.ok,
                failures=dict(e.failures), cooldowns=e.cooldowns,
                cooling_for_s=max(0.0, e.cooling_until - now) if e.streak else 0.0, latency_sum_s=e.latency_sum_s,
            )
            for e in self._endpoints
        ]

    async def complete(self, request: VLMRequest) -> VLMResponse:
        tried: list[_Endpoint] = []
        while True:
            endpoint, probe = await self._acquire(tried)
            if tried:
                add_retries(1)  # a moved request: one more model call for it, not a retry
            started = time.perf_counter()
            try:
                response = await endpoint.backend.complete(request)
            except BackendError as error:
                self._failed(endpoint, probe, error)
                if fault_of(error) == "rejected" or len(self._endpoints) == 1:
                    raise
                tried.append(endpoint)
                if len(tried) == len(self._endpoints):
                    raise self._exhausted(endpoint, error) from error
                continue
            except BaseException:  # cancelled, or a bug below: no judgement on the endpoint
                self._release(endpoint, probe)
                raise
            self._succeeded(endpoint, probe, time.perf_counter() - started)
            return response

    async def aclose(self) -> None:
        for endpoint in self._endpoints:
            await endpoint.backend.aclose()

    # ------------------------------------------------------------------ routing
    async def _acquire(self, tried: list[_Endpoint]) -> tuple[_Endpoint, bool]:
        """The least-loaded endpoint not yet tried for this request that can take it, waiting for
        a free slot (or a probe's outcome) when needed; raises when all the others cool down."""
        while True:
            now = self._clock()
            candidates = [e for e in self._endpoints if e not in tried]
            ready = [e for e in candidates if e.ready(now)]
            roomy = [e for e in ready if e.in_flight < self.max_concurrency]
            if roomy:
                chosen = min(roomy, key=lambda e: (e.in_flight, e.requests, e.index))
                probe = chosen.streak > 0  # cooled down: this request is its probe
                if probe:
                    chosen.probing = True
                chosen.in_flight += 1
                chosen.requests += 1
                return chosen, probe
            if not ready and not any(e.probing for e in candidates):
                raise self._all_cooling(now)
            cooling = [e.cooling_until - now for e in candidates if e.streak and e.cooling_until > now]
            await self._wait(min(cooling) if cooling else None)

    async def _wait(self, timeout: float | None) -> None:
        """Until a slot frees, a probe ends or ``timeout`` seconds pass."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its event loop is gone
                    waiter.set_result(None)

    # ------------------------------------------------------------------ outcomes
    def _release(self, endpoint: _Endpoint, probe: bool) -> None:
        endpoint.in_flight -= 1
        if probe:
            endpoint.probing = False
        self._wake()

    def _succeeded(self, endpoint: _Endpoint, probe: bool, seconds: float) -> None:
        endpoint.ok += 1
        endpoint.latency_sum_s += seconds
        self._recovered(endpoint, probe)
        self._release(endpoint, probe)

    def _recovered(self, endpoint: _Endpoint, probe: bool) -> None:
        if probe and endpoint.streak:
            log.info("endpoint %s answers again; back in rotation", endpoint.name)
            endpoint.streak = 0
            endpoint.cooling_until = 0.0

    def _failed(self, endpoint: _Endpoint, probe: bool, error: BackendError) -> None:
        fault = fault_of(error)
        endpoint.failures[fault] += 1
        endpoint.last_error = str(error)
        if fault == "rejected":  # the endpoint answered: it is up; the request was wrong
            self._recovered(endpoint, probe)
        elif len(self._endpoints) > 1 and (probe or endpoint.streak == 0):
            # only the first failure of a round counts: the other requests in flight on a dying
            # endpoint fail too, and must not push its cooldown to the maximum at once
            endpoint.streak += 1
            cooldown = min(self.base_cooldown * 2 ** (endpoint.streak - 1), self.max_cooldown)
            if error.retry_after is not None:
                cooldown = min(max(cooldown, error.retry_after), self.max_cooldown)
            endpoint.cooling_until = self._clock() + cooldown
            endpoint.cooldowns += 1
            log.warning(
                "endpoint %s %s (%s: %s); cooling down for %.1f s, its requests go to the other endpoints",
                endpoint.name, "still fails" if probe else "failed", fault, error, cooldown,
            )
        self._release(endpoint, probe)

    # ------------------------------------------------------------------ errors for the retry wrapper
    def _first_back_in(self, now: float) -> float | None:
        """Seconds until the first endpoint out of rotation may take a request again."""
        waits = [e.cooling_until - now for e in self._endpoints if e.streak]
        return max(min(waits), MIN_RETRY_AFTER_S) if waits else None

    def _exhausted(self, endpoint: _Endpoint, error: BackendError) -> BackendError:
        """Every endpoint failed for this request (``endpoint`` the last)."""
        return BackendError(
            f"all {len(self._endpoints)} endpoints failed for this request; the last ({endpoint.name}): {error}",
            retryable=True, retry_after=self._first_back_in(self._clock()), status=error.status, fault=error.fault,
        )

    def _all_cooling(self, now: float) -> BackendError:
        """No endpoint left for this request can take it before its cooldown ends."""
        last = max(self._endpoints, key=lambda e: e.cooling_until)
        back = self._first_back_in(now) or MIN_RETRY_AFTER_S
        return BackendError(
            f"all {len(self._endpoints)} endpoints are cooling down after failures (the last, {last.name}: "
            f"{last.last_error}); the first is back in {back:.1f} s",
            retryable=True, retry_after=back,
        )


def endpoint_stats(backend: VLMBackend) -> list[EndpointStats]:
    """The per-endpoint counts of the :class:`EndpointPool` in a wrapper stack; ``[]`` when the
    stack has none (an in-process model, a backend of the caller's own)."""
    pool = find_layer(backend, EndpointPool)
    return pool.stats() if pool is not None else []
