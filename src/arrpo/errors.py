"""The project's exceptions share one base, :class:`ArrpoError`, with a machine-readable ``kind``.

Callers branch on the kind, never on the message text: the command line turns any ``ArrpoError``
into a one-line message and exit status 2 (:mod:`arrpo.cli`), and the reward service answers it
with the HTTP status of its kind (:data:`HTTP_STATUS`).

A class sets its default kind as a class attribute; one raise may override it
(``ImageError(msg, kind="too_large")``). A class may also derive from the builtin exception it
stands for (``ValueError`` for bad input), so callers outside the project can catch it as such.
:func:`describe_validation_error` is the one way a pydantic error becomes a message.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: Every kind the project raises, with the HTTP status the reward service answers it with.
HTTP_STATUS: dict[str, int] = {
    "bad_input": 422,  # a request, option or file line that is not valid
    "image": 422,  # an image that cannot be used (generic)
    "not_an_image": 422,  # bytes in no image format we know
    "corrupt_image": 422,  # a truncated or corrupt image
    "not_found": 404,  # a file or resource that does not exist
    "not_a_file": 422,  # a path that exists but is a directory, a device, a pipe
    "too_large": 413,  # over a size, pixel or count limit
    "dataset": 422,  # a dataset that cannot be read
    "config": 500,  # a configuration that cannot work (refused at start where possible)
    "conflict": 409,  # a run or file state that forbids the action (changed judge, duplicate id)
    "unauthorized": 401,
    "forbidden": 403,
    "unsafe": 403,  # refusing an unsafe setup (an open service off loopback)
    "backend": 502,  # the VLM backend failed
    "backend_unavailable": 503,  # no usable VLM backend (not configured, weights missing)
    "rubric_unavailable": 501,  # no rubric for this task / prompt rubrics off
    "saturated": 503,
    "run_failed": 500,  # a batch whose verdicts are mostly invalid
    "error": 500,  # anything not classified more precisely
}


class ArrpoError(Exception):
    """Base of every exception the project raises on purpose.

    Attributes:
        kind: machine-readable category, a key of :data:`HTTP_STATUS`.

    ``str(exc)`` is the human-readable message.
    """

    kind: ClassVar[str] = "error"

    def __init_subclass__(cls, kind: str | None = None, **rest: object) -> None:
        # ``class DatasetError(ArrpoError, ValueError, kind="dataset")`` sets the class default
        super().__init_subclass__(**rest)
        if kind is not None:
            if kind not in HTTP_STATUS:
                raise ValueError(f"unknown error kind {kind!r}")
            cls.kind = kind

    def __init__(self, *args: object, kind: str | None = None):
        super().__init__(*args)
        if kind is not None:
            if kind not in HTTP_STATUS:
                raise ValueError(f"unknown error kind {kind!r}")
            self.kind = kind  # type: ignore[misc]  # instance override of the class default

    @property
    def http_status(self) -> int:
        """The HTTP status the reward service answers this error with."""
        return HTTP_STATUS.get(self.kind, 500)


class BadInputError(ArrpoError, ValueError, kind="bad_input"):
    """An input (option, request field, file line) that is not valid."""


class ConfigError(ArrpoError, ValueError, kind="config"):
    """A configuration that cannot work; the message names the file or setting and the value."""


class ReportError(ArrpoError, ValueError, kind="bad_input"):
    """There is nothing to report on: no evaluation run, no learning state (the message says which)."""


class RunFailedError(ArrpoError, kind="run_failed"):
    """A batch finished, but too many of its verdicts are invalid to trust it."""


def kind_of(exc: BaseException) -> str:
    """The kind of any exception (``"error"`` for exceptions outside the project)."""
    return exc.kind if isinstance(exc, ArrpoError) else "error"


def describe_validation_error(
    exc: Any,
    *,
    limit: int = 10,
    unknown: str = "unknown key",
    missing: str | None = None,
    whole: str = "value",
    hide: tuple[str, ...] = (),
) -> str:
    """One line for a pydantic ``ValidationError``: each location with what is wrong with it
    (``trian: unknown key; judges.0.order: Input should be 'given', 'random' or 'both'``), at most
    ``limit`` of them, instead of pydantic's multi-line report with links.

    ``unknown`` words a key the model does not know and ``missing`` (if given) a required one that
    is absent; ``whole`` names an error of the whole value (no location; ``""``: the message alone);
    ``hide`` lists location parts left out (the reward service drops FastAPI's ``body``). Anything
    that is not a ``ValidationError`` gives its message on one line.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return " ".join(str(exc).split())
    problems = []
    found = errors()
    for error in found[:limit]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in hide) or whole
        if error.get("type") == "extra_forbidden":
            message = unknown
        elif error.get("type") == "missing" and missing is not None:
            message = missing
        else:
            message = " ".join(str(error.get("msg", "invalid value")).removeprefix("Value error, ").split())
        problems.append(f"{where}: {message}" if where else message)
    more = f" (and {len(found) - limit} more)" if len(found) > limit else ""
    return "; ".join(problems) + more
