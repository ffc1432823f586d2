"""Sharing samples between the ranks of a distributed trainer, so a prompt's group is whole.

Flow-GRPO's sampler spreads the k samples of one prompt over all ranks; a pairwise judge needs the
whole group. :class:`TorchExchange` all-gathers small Python objects over a dedicated gloo process
group (created once, collectively, when the adapter is built), so it never interleaves with the
trainer's own NCCL collectives and works from the trainer's reward thread. :class:`LocalExchange`
is the single-process case.

Every rank must call :meth:`all_gather` the same number of times in the same order; the adapters
do so once or twice per reward call, under a lock, so concurrent reward calls on one rank (the
trainer's thread pool) cannot interleave their exchanges.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any, Protocol


class Exchange(Protocol):
    rank: int
    world_size: int

    def all_gather(self, obj: Any) -> list[Any]: ...


class LocalExchange:
    """One process: nothing to exchange."""

    rank = 0
    world_size = 1

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]


class TorchExchange:
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
        self.lock = threading.Lock()

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
