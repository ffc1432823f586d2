"""Keeping the service within bounds: request guards and admission control.

* :class:`RequestGuard` (ASGI middleware) refuses non-JSON POST bodies (415) and bodies over the
  size limit (413), the latter without reading more than the limit into memory.
* :class:`AdmissionGate` bounds the judge calls in progress. A request that does not fit is
  answered 503 with ``Retry-After`` at once instead of waiting in an unbounded queue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_error(send: Send, status: int, code: str, message: str,
                     headers: dict[str, str] | None = None) -> None:
    """Answer with the service's JSON error body straight from ASGI middleware."""
    body = json.dumps({"error": {"status": status, "code": code, "message": message}}).encode()
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
    })
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Refuse POST bodies that are not JSON or are larger than ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if content_type != "application/json":
            shown = content_type or "none"
            await send_error(
                send, 415, "unsupported_media_type",
                f"request bodies must be JSON (Content-Type: application/json), not {shown}; "
                "images go inside the JSON as base64 text",
            )
            return
        limit = self.max_body_bytes
        too_large = (
            f"request body exceeds the {limit:,}-byte limit; send fewer or smaller images "
            "(or raise --max-body-mb on the server)"
        )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, "body_too_large", too_large)
            return

        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            # Past the limit: answer 413 now and tell the app the client is gone, so nothing more
            # is read into memory and whatever the app still sends is dropped.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await send_error(send, 413, "body_too_large", too_large)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


class AdmissionGate:
    """At most ``capacity`` judge calls admitted at once; the rest are refused, never queued.

    Runs on one event loop, so no lock is needed. A request is admitted when the gate is not yet
    full (it may overshoot by its own size, so a large group is never refused forever).
    """

    def __init__(self, capacity: int, backend_concurrency: int | None = None):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.backend_concurrency = backend_concurrency or capacity
        self.in_use = 0
        self.admitted = 0
        self.rejected = 0
        self._unit_seconds: float | None = None  # moving average of seconds per judge call

    def try_acquire(self, units: int) -> bool:
        if self.in_use >= self.capacity:
            self.rejected += 1
            return False
        self.in_use += units
        self.admitted += 1
        return True

    def release(self, units: int, seconds: float | None = None) -> None:
        self.in_use = max(0, self.in_use - units)
        if seconds is not None and units > 0:
            sample = seconds / units
            previous = self._unit_seconds
            self._unit_seconds = sample if previous is None else 0.8 * previous + 0.2 * sample

    def retry_after(self) -> int:
        """Whole seconds after which a retry is likely to be admitted (1 to 60)."""
        per_call = self._unit_seconds if self._unit_seconds is not None else 1.0
        drain = per_call * self.in_use / max(1, self.backend_concurrency)
        return int(min(60, max(1, math.ceil(drain))))
