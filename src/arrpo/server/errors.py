"""Errors arrpo's servers answer with (the reward service, the label and review pages): always
JSON ``{"error": {"status", "code", "message"}}``."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from arrpo.errors import HTTP_STATUS, ArrpoError, describe_validation_error

log = logging.getLogger("arrpo.server")


#: The kind an ApiError carries, by its status (the reverse of :data:`arrpo.errors.HTTP_STATUS`).
_KIND_BY_STATUS = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict", 413: "too_large",
                   422: "bad_input", 501: "rubric_unavailable", 502: "backend", 503: "saturated"}


class ApiError(ArrpoError):
    """An error with its HTTP status, a stable code and a message that says what to do."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message, kind=_KIND_BY_STATUS.get(status, "error"))
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    @classmethod
    def from_error(cls, exc: ArrpoError, code: str | None = None, message: str | None = None) -> ApiError:
        """The answer to a project error: the status of its kind, the kind as the code by default."""
        if isinstance(exc, ApiError):
            return exc
        return cls(HTTP_STATUS.get(exc.kind, 500), code or exc.kind, message or str(exc))


class Utf8JSONResponse(JSONResponse):
    """JSON responses that are always valid UTF-8: text UTF-8 cannot hold (a lone surrogate in a
    model's answer) is sent as a ``\\u`` escape instead of failing the response."""

    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra):
    """The one error answer of every arrpo server (``extra``: more top-level fields, e.g. a state)."""
    body = {"error": {"status": status, "code": code, "message": message}, **extra}
    return Utf8JSONResponse(body, status_code=status, headers=headers)


def describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    """(status, code, message) for a request body that failed parsing or validation."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        ctx = (detail.get("ctx") or {}).get("error", "")
        return 400, "malformed_json", f"the request body is not valid JSON ({ctx})".replace(" ()", "")
    message = describe_validation_error(
        exc, unknown="unknown field (the service accepts no paths or extra options)", missing="field required",
        whole="body", hide=("body",),
    )
    return 422, "invalid_request", message


def describe_unparsable_body(cause: BaseException | None) -> str:
    """Why a syntactically plausible body could not be parsed, in words that say what to send."""
    if isinstance(cause, UnicodeDecodeError):
        why = "it is not valid UTF-8"
    elif isinstance(cause, RecursionError):
        why = "its nesting is deeper than the parser allows"
    elif isinstance(cause, ValueError) and "digits" in str(cause):
        why = "it holds an integer of more than 4,300 digits"
    else:
        why = type(cause).__name__ if cause is not None else "it could not be parsed"
    return f"the request body is not valid JSON ({why}); send UTF-8 JSON with plain numbers and shallow nesting"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(ArrpoError)
    async def _project_error(request: Request, exc: ArrpoError):
        error = ApiError.from_error(exc)
        if error.status >= 500:
            log.warning("%s on %s %s: %s", exc.kind, request.method, request.url.path, exc)
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return error_response(*describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:
            # FastAPI's only 400: a body its JSON parser refused for a reason other than syntax
            return error_response(400, "malformed_json", describe_unparsable_body(exc.__cause__))
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")
