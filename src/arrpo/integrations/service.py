"""What the reward service says about itself, and how many requests a job may have in flight.

* :class:`ServiceFacts` reads ``GET /health`` through the client's retry budget (a service that is
  restarting is waited for, never guessed at) and keeps it until a request fails; after a failure
  the next use reads it again, so a restarted service's new limits are seen.
* :func:`admitted_at_once` is the service's admission rule seen from the client: its gate
  (:class:`arrpo.server.limits.AdmissionGate`) admits a request while fewer than ``capacity`` judge
  calls are in progress, so ``n`` requests of ``units`` calls each are all admitted when
  ``(n - 1) * units < capacity``.
* :func:`plan_judging` turns that into a plan for a job of several ranks: which ranks judge and
  how many judge calls each may have in flight, so that together they never draw a 503 of
  their own. :class:`UnitGate` enforces one rank's share across every reward call of the process
  (threads included), on arrpo's shared event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from arrpo.client import RewardServiceError, shared_async_client
from arrpo.server.protocol import Health

log = logging.getLogger("arrpo.integrations")

#: Failures after which the service's facts are read again (it may have restarted, or changed).
REREAD_AFTER = frozenset({0, 413, 500, 502, 503, 504})


def admitted_at_once(capacity: int, units: int) -> int:
    """Requests of ``units`` judge calls each that the service admits together without a 503."""
    if capacity < 1 or units < 1:
        raise ValueError("capacity and units must be at least 1")
    return (capacity - 1) // units + 1


@dataclass(frozen=True)
class JudgingPlan:
    """Who judges: ``judges`` ranks (0 .. judges-1), each with ``share`` judge calls in flight.

    ``oversize``: one request alone is larger than the share (it is sent only when nothing else
    of this rank is in flight); ``contended``: ranks that cannot coordinate may still draw 503s
    (then retried after ``Retry-After``), with the capacity that would avoid them in ``needed``.
    """

    judges: int
    share: int
    oversize: bool
    contended: bool
    needed: int


def plan_judging(capacity: int, units: int, ranks: int, *, coordinated: bool) -> JudgingPlan:
    """Plan ``ranks`` processes sending requests of up to ``units`` judge calls to a service
    admitting ``capacity``.

    ``coordinated``: the ranks agree who judges (the groups are exchanged between them), so only
    as many judge as the service admits at once; otherwise every rank judges its own groups.
    """
    ranks = max(1, ranks)
    fits = capacity // units if units <= capacity else 0
    if coordinated:
        judges = max(1, min(ranks, fits))
        return JudgingPlan(judges, capacity // judges, units > capacity // judges, False, capacity)
    share = capacity // ranks
    contended = units > share and admitted_at_once(capacity, units) < ranks
    return JudgingPlan(ranks, max(1, share), units > share, contended, (ranks - 1) * units + 1)


class UnitGate:
    """At most ``share`` judge calls in flight from this process (a larger request goes alone).

    Lives on arrpo's shared event loop (:func:`arrpo._sync.run_sync`); every reward call of the
    process, from any thread, takes its units here.
    """

    def __init__(self, share: int):
        self.share = max(1, share)
        self.in_use = 0
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def acquire(self, units: int) -> None:
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self.in_use == 0 or self.in_use + units <= self.share)
            self.in_use += units

    async def release(self, units: int) -> None:
        changed = self._condition()
        async with changed:
            self.in_use = max(0, self.in_use - units)
            changed.notify_all()


_gates: dict[str, UnitGate] = {}
_gates_lock = threading.Lock()


def process_gate(url: str, share: int) -> UnitGate:
    """The one gate of this process for the service at ``url``, its share set to ``share``."""
    with _gates_lock:
        gate = _gates.setdefault(url.rstrip("/"), UnitGate(share))
        gate.share = max(1, share)
        return gate


class ServiceFacts:
    """The service's ``/health`` (limits and capacity), read when first needed and after a failure.

    Args:
        url, client_settings: as for :func:`arrpo.client.shared_async_client` (the retry budget
            applies to ``/health`` too).
        max_group_images: the caller's own cap on images per request (the service's is the upper
            bound).
    """

    def __init__(self, url: str, client_settings: dict[str, Any], max_group_images: int | None = None):
        self.url = url
        self.client_settings = client_settings
        self.max_group_images = max_group_images
        self._health: Health | None = None
        self._warned_cap = False

    def client(self) -> Any:
        return shared_async_client(self.url, **self.client_settings)

    async def health(self) -> Health:
        """``/health``; raises :class:`RewardServiceError` when the service stays unreachable."""
        if self._health is None:
            self._health = await self.client().health()
        return self._health

    def failed(self, error: RewardServiceError) -> None:
        """A request failed: read the facts again before the next one."""
        if error.status in REREAD_AFTER or error.code == "too_many_images":
            self._health = None

    async def image_limit(self) -> int:
        """Most images one group request may hold: the service's ``--max-images`` (16 for a
        service too old to report it), capped by ``max_group_images``."""
        reported = (await self.health()).limits.max_images
        if self.max_group_images is not None and self.max_group_images > reported and not self._warned_cap:
            self._warned_cap = True
            log.warning("arrpo: max_group_images=%d is over the service's --max-images %d; using %d",
                        self.max_group_images, reported, reported)
        return min(self.max_group_images or reported, reported)

    def default_order(self) -> str:
        """The service's order policy for requests that name none, from the last ``/health`` read
        (``both``, the costlier, before it is read)."""
        return self._health.limits.order if self._health is not None else "both"

    def default_pairing(self) -> str:
        """The service's pairing for requests that name none, from the last ``/health`` read
        (``all_pairs``, the costliest default, before it is read)."""
        return self._health.limits.pairing if self._health is not None else "all_pairs"

    async def capacity(self) -> int:
        """Judge calls the service admits at once (``--max-pending``)."""
        return max(1, (await self.health()).capacity)
