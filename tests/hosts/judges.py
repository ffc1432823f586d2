"""Scripted judges whose answer depends on the image content, and the rewards they imply."""

from __future__ import annotations

from arrpo.testing.scripted_server import ChatRequest, Reply
from tests.serve.helpers import brighter_wins, brightness

__all__ = ["brighter_wins", "garbage", "http_500", "invalid_when", "official"]


def official(grays: list[int], win: float = 1.0, lose: float = 0.1) -> list[float]:
    """Official-preset rewards of one group judged all-pairs by ``brighter_wins`` (distinct grays)."""
    n = len(grays)
    return [-lose + (win + lose) * sum(g > other for other in grays) / (n - 1) for g in grays]


def garbage(_: ChatRequest) -> Reply:
    """An answer no parser can read."""
    return Reply(text="I would rather not say.")


def http_500(_: ChatRequest) -> Reply:
    return Reply(status=500)


def invalid_when(grays: set[int]):
    """``brighter_wins``, but an unreadable answer whenever one of the two candidates has a gray in ``grays``."""

    def handler(request: ChatRequest) -> Reply:
        first, second = (brightness(im) for im in request.images()[-2:])
        if first in grays or second in grays:
            return Reply(text="no idea")
        return brighter_wins(request)

    return handler
