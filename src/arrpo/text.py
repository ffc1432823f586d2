"""Text that came from a model, made safe to keep: valid UTF-8 and of bounded length.

A model's answer is hostile input. An escape cut at ``max_tokens`` leaves a lone UTF-16
surrogate (``"\\ud800"``) that Python holds happily but no UTF-8 writer (a JSONL file, the
terminal, an HTTP response) can encode; a runaway answer can be megabytes long. Verdicts pass
every string through :func:`valid_utf8`, and the judge clips what it keeps with :func:`clip`.
"""

from __future__ import annotations

import re

#: What replaces a code point UTF-8 cannot encode (U+FFFD REPLACEMENT CHARACTER).
REPLACEMENT = "\ufffd"
#: Default number of characters of a model answer kept in a verdict (``raw`` and ``reason``).
DEFAULT_MAX_ANSWER_CHARS = 16_000

_SURROGATE = re.compile("[\ud800-\udfff]")
_HIGH_LOW = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def valid_utf8(text: str) -> str:
    """``text`` with every code point UTF-8 cannot encode replaced by U+FFFD.

    A high surrogate followed by a low one (a pair split into two code points, as
    ``surrogateescape`` or hand-built strings leave them) is joined into the character it
    encodes; every other surrogate is replaced. Text that is already valid is returned as is.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    joined = _HIGH_LOW.sub(_join_pair, text)
    return _SURROGATE.sub(REPLACEMENT, joined)


def _join_pair(match: re.Match[str]) -> str:
    high, low = (ord(c) for c in match.group(0))
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def clip(text: str, limit: int | None, *, keep: str = "head") -> str:
    """At most about ``limit`` characters of ``text``, with a marker saying how much was cut.

    ``keep="head"`` keeps the beginning, ``"tail"`` the end (where a model's final answer is),
    ``"both"`` half of each. ``limit=None`` (or 0) keeps everything.
    """
    if not limit or len(text) <= limit:
        return text
    cut = len(text) - limit
    marker = f" […{cut:,} of {len(text):,} characters cut…] "
    if keep == "tail":
        return marker.lstrip() + text[-limit:]
    if keep == "both":
        half = limit // 2
        return text[:half] + marker + text[len(text) - (limit - half):]
    return text[:limit] + marker.rstrip()


def preview(value: object, limit: int = 80) -> str:
    """A short ``repr`` of any value for an error message (bounded, never raises)."""
    try:
        if isinstance(value, str):
            shown = repr(value[: limit + 1])
        elif isinstance(value, (list, tuple)) and len(value) > 8:
            shown = repr(list(value[:8]))[:-1] + f", … {len(value):,} items]"
        else:
            shown = repr(value)
    except Exception as exc:  # a pathological value (e.g. nesting past the recursion limit)
        shown = f"<{type(value).__name__}: {type(exc).__name__}>"
    return valid_utf8(clip(shown, limit))


def exception_text(exc: BaseException, limit: int = 500) -> str:
    """``Type: message`` of an exception, valid UTF-8 and at most about ``limit`` characters of
    message, whatever the message holds (a ``__str__`` that raises gives just the type)."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    message = valid_utf8(clip(message, limit))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
