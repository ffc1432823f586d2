"""Sharing samples between the ranks of a distributed trainer, so a prompt's group is whole.

Flow-GRPO's sampler spreads the k samples of one prompt over all ranks; a pairwise judge needs the
whole group. :class:`TorchExchange` all-gathers small Python objects over a dedicated gloo process
group (created once, collectively, when the adapter is built), so it never interleaves with the
trainer's own NCCL collectives and works from the trainer's reward thread. :class:`LocalExchange`
is the single-process case.

Every rank must call :meth:`all_gather` the same number of times in the same order. A reward call
takes a ticket the moment it starts (:meth:`TorchExchange.turn`) and exchanges only when its turn
comes, so reward calls running concurrently on one rank (the trainer's thread pool) exchange one
at a time, in the order they took their tickets. That order is the threads', not necessarily the
batches': rank 0's second batch may pair with rank 1's first. With ``samples_per_prompt`` this is
of no consequence — a group is complete at k samples of its prompt, whatever calls brought them,
and within one epoch they come from the same policy; without it a mispairing leaves fragments,
which the assembler refuses.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import threading
from collections.abc import Iterator
from typing import Any, Protocol


class Exchange(Protocol):
    rank: int
    world_size: int

    def all_gather(self, obj: Any) -> list[Any]: ...

    def ticket(self) -> int: ...

    def turn(self, ticket: int) -> contextlib.AbstractContextManager[None]: ...


class Turns:
    """Tickets in the order calls start; :meth:`turn` lets them through one at a time, in order."""

    def __init__(self) -> None:
        self._tickets = itertools.count()
        self._ticket_lock = threading.Lock()
        self._serving = 0
        self._turns = threading.Condition()

    def ticket(self) -> int:
        """A place in line, taken as soon as a reward call starts."""
        with self._ticket_lock:
            return next(self._tickets)

    @contextlib.contextmanager
    def turn(self, ticket: int) -> Iterator[None]:
        """Hold the exchange while it is ``ticket``'s turn; the next ticket goes after."""
        with self._turns:
            self._turns.wait_for(lambda: self._serving == ticket)
        try:
            yield
        finally:
            with self._turns:
                self._serving = ticket + 1
                self._turns.notify_all()


class LocalExchange(Turns):
    """One process: nothing to exchange (calls still take turns, which costs nothing)."""

    rank = 0
    world_size = 1

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]


class TorchExchange(Turns):
    """All-gather of picklable objects over a gloo group of the initialised default group's ranks.

    Building it is a collective (``new_group``): every rank must build it, in the same order.
    A rank that never arrives makes the others fail after ``timeout`` seconds instead of hanging.
    """

    def __init__(self, timeout: float = 600.0):
        import torch.distributed as dist

        self._dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
        super().__init__()

    def all_gather(self, obj: Any) -> list[Any]:
        gathered: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(gathered, obj, group=self.group)
        return gathered


def default_exchange(distributed: bool | None = None, timeout: float = 600.0) -> Exchange:
    """A :class:`TorchExchange` when torch.distributed is initialised with more than one rank
    (or ``distributed=True``, which requires it), else :class:`LocalExchange`."""
    if distributed is False:
        return LocalExchange()
    try:
        import torch.distributed as dist

        ready = dist.is_available() and dist.is_initialized()
    except ImportError:
        ready = False
    if not ready:
        if distributed:
            raise RuntimeError("distributed=True but torch.distributed is not initialised")
        return LocalExchange()
    if dist.get_world_size() == 1 and not distributed:
        return LocalExchange()
    return TorchExchange(timeout)
