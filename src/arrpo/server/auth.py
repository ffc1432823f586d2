"""Who may call the service: bearer tokens, and the rule that an open service stays on loopback."""

from __future__ import annotations

import hmac
import ipaddress

from arrpo.errors import ArrpoError
from arrpo.server.errors import ApiError


class UnsafeBindError(ArrpoError, RuntimeError, kind="unsafe"):
    """Refusal to serve on a non-loopback address without a token."""


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``; False for ``0.0.0.0``, ``::`` and the rest."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Raise :class:`UnsafeBindError` when ``host`` is reachable from outside and there is no token."""
    if token:
        if len(token) < 16:
            raise UnsafeBindError("the service token must be at least 16 characters long")
        return
    if not is_loopback(host):
        raise UnsafeBindError(
            f"refusing to serve on {host} without a token: anyone who can reach it could spend your "
            "VLM budget. Set a token (e.g. export ARRPO_SERVE_TOKEN=$(openssl rand -hex 24)) "
            "or bind to 127.0.0.1."
        )


def check_token(authorization: str | None, token: str | None) -> None:
    """Validate an ``Authorization`` header against ``token`` (no-op when the service has none).

    Raises ApiError 401 (missing or malformed header) or 403 (wrong token). The compared values
    never appear in messages or logs.
    """
    if not token:
        return
    challenge = {"WWW-Authenticate": 'Bearer realm="arrpo"'}
    if not authorization:
        raise ApiError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>'", challenge)
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "unauthorized", "malformed Authorization header: expected 'Bearer <token>'", challenge)
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise ApiError(403, "forbidden", "invalid bearer token")


class AuthGuard:
    """ASGI middleware checking the bearer token of ``/v1/*`` and ``/metrics`` requests first.

    Runs before the body is read or parsed, so an unauthenticated caller gets 401/403 whatever it
    sends (a malformed or huge body included) and costs the service no parsing.
    """

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token

    @staticmethod
    def guarded(path: str) -> bool:
        return path.startswith("/v1/") or path == "/metrics"

    async def __call__(self, scope, receive, send) -> None:
        if self.token and scope["type"] == "http" and self.guarded(scope.get("path", "")):
            headers = dict(scope.get("headers") or [])
            raw = headers.get(b"authorization")
            try:
                check_token(raw.decode("latin-1") if raw is not None else None, self.token)
            except ApiError as exc:
                from arrpo.server.limits import send_error

                await send_error(send, exc.status, exc.code, exc.message, exc.headers)
                return
        await self.app(scope, receive, send)
