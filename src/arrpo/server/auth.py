"""Who may call the service: bearer tokens, and the rule that an open service stays on loopback.

These are the rules of every arrpo server (the reward service and the label/review pages of
:mod:`arrpo.annotate.web`): a token of at least :data:`MIN_TOKEN_CHARS` characters, read from an
environment variable; without one, loopback only; tokens compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress

from arrpo.errors import ArrpoError
from arrpo.server.errors import ApiError

#: Shortest token any arrpo server accepts.
MIN_TOKEN_CHARS = 16
#: The environment variable holding the reward service's token.
SERVE_TOKEN_ENV = "ARRPO_SERVE_TOKEN"


class UnsafeBindError(ArrpoError, RuntimeError, kind="unsafe"):
    """Refusal to serve on a non-loopback address without a token (or with a short one)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``; False for ``0.0.0.0``, ``::`` and the rest."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(
    host: str, token: str | None, *, token_env: str = SERVE_TOKEN_ENV, serving: str = "the reward service",
    risk: str = "anyone who can reach it could spend your VLM budget",
) -> None:
    """Raise :class:`UnsafeBindError` for a token shorter than :data:`MIN_TOKEN_CHARS`, or when
    ``host`` is reachable from outside and there is no token. ``serving``, ``risk`` and
    ``token_env`` word the message for the server at hand."""
    if token:
        if len(token) < MIN_TOKEN_CHARS:
            raise UnsafeBindError(f"the token in ${token_env} must be at least {MIN_TOKEN_CHARS} characters long")
        return
    if not is_loopback(host):
        raise UnsafeBindError(
            f"refusing to serve {serving} on {host} without a token: {risk}. Set one "
            f"(e.g. export {token_env}=$(openssl rand -hex 24)) or bind to 127.0.0.1."
        )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``None`` when absent or malformed."""
    scheme, _, presented = (authorization or "").partition(" ")
    return (presented.strip() or None) if scheme.lower() == "bearer" else None


def token_matches(presented: str | None, token: str) -> bool:
    """Whether ``presented`` is ``token`` (constant-time; never logged)."""
    return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())  # type: ignore[union-attr]


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
    presented = bearer_token(authorization)
    if presented is None:
        raise ApiError(401, "unauthorized", "malformed Authorization header: expected 'Bearer <token>'", challenge)
    if not token_matches(presented, token):
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
