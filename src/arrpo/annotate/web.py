"""What the label and review pages share: who may call them, binding, pages and images.

Rules (the host/token rules of ``arrpo serve``, from :mod:`arrpo.server.auth`, and its error
answers, ``{"error": {"status", "code", "message"}}`` from :mod:`arrpo.server.errors`):

* Without a token the page only binds to loopback, and requests must name a loopback ``Host``
  (a page on another site that rebinds its DNS name to 127.0.0.1 is refused).
* With a token (≥ 16 characters, read from an environment variable, never the command line),
  the browser opens ``/?token=...`` once; the server answers with an HttpOnly, SameSite=Strict
  cookie and a redirect to ``/``. Scripts may send ``Authorization: Bearer <token>`` instead.
* ``POST`` bodies must be ``application/json`` (a cross-site form cannot send that without a
  CORS preflight, which is never granted).
* Images are served by pair number and slot, never by a path from the request.
"""

from __future__ import annotations

import errno
import socket
from functools import lru_cache
from importlib import resources
from typing import Any

from arrpo.datasets.pairs import ImageRef
from arrpo.errors import ArrpoError
from arrpo.images import ImageData, ImageError, load_image
from arrpo.server.auth import bearer_token, check_bind, is_loopback, token_matches
from arrpo.server.errors import error_response, install_error_handlers

COOKIE = "arrpo_annotate"
TOKEN_ENV = "ARRPO_ANNOTATE_TOKEN"
#: Largest image shown (decoded width × height); larger files are refused as possible bombs.
MAX_IMAGE_PIXELS = 64_000_000


class PortInUseError(ArrpoError, OSError, kind="conflict"):
    """The port to bind is taken; the message says which and what to do."""


def page_html(name: str) -> str:
    """A page shipped with the package (``arrpo/annotate/pages/<name>``)."""
    return resources.files("arrpo.annotate").joinpath("pages", name).read_text(encoding="utf-8")


def check_page_bind(host: str, token: str | None, token_env: str = TOKEN_ENV) -> None:
    """The service's bind rule (:func:`~arrpo.server.auth.check_bind`) worded for a page: the
    message names the page's own variable (``token_env``), not the reward service's."""
    check_bind(host, token, token_env=token_env, serving="the page",
               risk="anyone who can reach it could see your images and change your answers")


def bind_socket(host: str, port: int, token: str | None, *, token_env: str = TOKEN_ENV) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: any free one).

    Raises :class:`~arrpo.server.auth.UnsafeBindError` for a non-loopback host without a token and
    :class:`PortInUseError` when the port is taken.
    """
    check_page_bind(host, token, token_env)
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use; choose another with --port "
                                 "(--port 0 picks a free one)") from None
        raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(app: Any, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve ``app`` on an already bound socket until interrupted (SIGINT/SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, server_header=False,
                            lifespan="on", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def _allowed_host(header: str | None, bound: str) -> bool:
    """Whether a request's ``Host`` header is acceptable for a page bound to ``bound`` without a token."""
    if not header:
        return False
    name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
    if header.startswith("["):
        name = header[: header.index("]") + 1]
    return is_loopback(name.strip("[]")) or name.lower() == bound.lower()


def install_guard(app: Any, *, host: str, token: str | None) -> None:
    """Add the access rules above, and the service's error answers, to a FastAPI app."""
    from fastapi import Request
    from fastapi.responses import RedirectResponse

    install_error_handlers(app)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        def refuse(status: int, code: str, message: str):
            return error_response(status, code, message, _HEADERS)

        if token is None and not _allowed_host(request.headers.get("host"), host):
            return refuse(403, "forbidden", "this page only answers requests addressed to its loopback address")
        if token is not None:
            query_token = request.query_params.get("token")
            if request.url.path == "/" and query_token is not None:
                if not token_matches(query_token, token):
                    return refuse(403, "forbidden", "invalid token")
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
                return response
            presented = bearer_token(request.headers.get("authorization")) or request.cookies.get(COOKIE)
            if request.url.path != "/health" and not token_matches(presented, token):
                return refuse(401, "unauthorized", "open the page as /?token=<your token> (or send Authorization: Bearer)")
        if request.method == "POST":
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return refuse(415, "unsupported_media_type", "POST bodies must be application/json")
            length = request.headers.get("content-length")
            if length is None or not length.isdigit() or int(length) > 64 * 1024:
                return refuse(413, "too_large", "request bodies are limited to 64 KiB and need a Content-Length")
        response = await call_next(request)
        for key, value in _HEADERS.items():
            response.headers.setdefault(key, value)
        return response


def add_basic_routes(app: Any) -> None:
    """``GET /health`` (open, for scripts waiting on start-up) and an empty ``/favicon.ico``."""
    from fastapi.responses import Response

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/favicon.ico")
    def favicon() -> Any:
        return Response(status_code=204)


_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
}


@lru_cache(maxsize=24)
def _load(path: str | None, data: bytes | None) -> ImageData:
    return load_image(data if data is not None else str(path), max_image_pixels=MAX_IMAGE_PIXELS)


def image_response(ref: ImageRef | None) -> Any:
    """The validated image of ``ref`` as an HTTP response (404 without one, 422 when unreadable)."""
    from fastapi.responses import Response

    if ref is None:
        return error_response(404, "not_found", "no such image")
    try:
        image = _load(ref.path, ref.data)
    except ImageError as exc:
        return error_response(422, exc.kind, f"image unreadable: {exc}")
    return Response(content=image.data, media_type=image.mime)
