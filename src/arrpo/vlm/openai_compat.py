"""Backend for any OpenAI-compatible chat server: vLLM, SGLang, ``transformers serve``, hosted APIs.

Uses the official ``openai`` SDK with its own retries switched off: retries, caching and
concurrency limits are wrappers (:mod:`arrpo.vlm.wrappers`) so they behave the same for every
backend. This class only translates requests and classifies errors.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx2
import openai

from arrpo.images import ImageData
from arrpo.schema import Usage
from arrpo.text import clip, valid_utf8
from arrpo.vlm.base import BackendError, ImagePart, Message, VLMRequest, VLMResponse, options_tag
from arrpo.vocab import JsonMode

#: Connections per HTTP pool; more connections are spread over several pools.
CONNECTIONS_PER_POOL = 8
#: Environment variables read for the API key, first found wins.
API_KEY_ENV = ("ARRPO_API_KEY", "OPENAI_API_KEY")


def api_key_from_env() -> str:
    """The API key from ``ARRPO_API_KEY`` or ``OPENAI_API_KEY``; ``"EMPTY"`` for local servers."""
    for name in API_KEY_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return "EMPTY"


def to_openai_messages(
    messages: tuple[Message, ...] | list[Message],
    image_url: Callable[[ImageData], str] = lambda image: image.data_url,
) -> list[dict[str, Any]]:
    """Translate protocol messages to OpenAI chat format (images as base64 data URLs)."""
    out = []
    for message in messages:
        if message.role != "user" and not message.images:
            out.append({"role": message.role, "content": message.text})
            continue
        content = []
        for part in message.parts:
            if isinstance(part, ImagePart):
                content.append({"type": "image_url", "image_url": {"url": image_url(part.image)}})
            else:
                content.append({"type": "text", "text": part.text})
        out.append({"role": message.role, "content": content})
    return out


#: Stands in for an image while the rest of a request body is serialised (never sent).
_SLOT = f"arrpo-image-slot-{uuid.uuid4().hex}-"
_SLOT_RE = re.compile(f'"{_SLOT}(\\d+)"'.encode())


def encode_chat_body(messages: tuple[Message, ...] | list[Message], **fields: Any) -> bytes:
    """The JSON body of a chat request, with each image's data URL spliced in pre-encoded.

    Serialising megabytes of base64 on every request costs milliseconds; the data URL is pure
    ASCII without quotes or backslashes, so each image's JSON string is built once
    (:attr:`ImageData.data_url_json`) and copied in.
    """
    images: list[ImageData] = []

    def slot(image: ImageData) -> str:
        images.append(image)
        return f"{_SLOT}{len(images) - 1}"

    skeleton = json.dumps(
        {**fields, "messages": to_openai_messages(messages, slot)}, ensure_ascii=False
    ).encode("utf-8")
    pieces = _SLOT_RE.split(skeleton)
    for index in range(1, len(pieces), 2):
        pieces[index] = images[int(pieces[index])].data_url_json
    return b"".join(pieces)


def _retry_after(response: httpx2.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    return retry_after_seconds(value) if value is not None else None


def retry_after_seconds(value: str, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait: a number of seconds or an HTTP-date (RFC 9110
    allows both), never negative (a date in the past is 0); ``None`` when it is neither. The
    retry wrapper caps it at its ``max_delay``."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, as RFC 5322 reads it
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


class OpenAIBackend:
    """Async chat backend over an OpenAI-compatible HTTP API.

    Args:
        base_url: server URL including ``/v1`` (e.g. ``http://localhost:8000/v1``).
        model: model name the server expects.
        api_key: key; defaults to ``ARRPO_API_KEY``/``OPENAI_API_KEY`` or ``"EMPTY"``.
        timeout: per-request timeout in seconds.
        json_mode: ``auto`` asks for ``response_format=json_object`` and stops asking if the
            server rejects it; ``json_object`` always asks; ``off`` never does. The caller
            validates JSON in every case (some servers silently ignore the field).
        extra_body: extra fields sent with every request (e.g. ``{"chat_template_kwargs":
            {"enable_thinking": False}}`` for Qwen3 on vLLM).
        max_connections: HTTP connection-pool size.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        json_mode: JsonMode = "auto",
        extra_body: dict[str, Any] | None = None,
        max_connections: int = 256,
    ):
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.json_mode: JsonMode = json_mode
        self.extra_body = dict(extra_body or {})
        # part of the cache key: fixed at construction ("auto" may switch itself off later)
        self._options_tag = options_tag(
            {"json_mode": None if json_mode == "auto" else json_mode, "extra_body": self.extra_body}
        )
        # httpcore's pool scans its connections quadratically on every request, which costs
        # milliseconds per request at 64+ connections; several small pools keep that flat.
        shards = max(1, -(-max_connections // CONNECTIONS_PER_POOL))
        per_pool = -(-max_connections // shards)
        limits = httpx2.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._https = [openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout) for _ in range(shards)]
        self._clients = [
            openai.AsyncOpenAI(
                base_url=base_url,
                api_key=api_key or api_key_from_env(),
                timeout=timeout,
                max_retries=0,
                http_client=http,
            )
            for http in self._https
        ]
        self._next = itertools.count()

    @property
    def model_id(self) -> str:
        return self.model_id_over([self.base_url])

    def model_id_over(self, base_urls: Sequence[str]) -> str:
        """The model id of this model served by the endpoints ``base_urls`` together: their sorted
        set stands where the one URL does, so the response cache key does not depend on which of
        them answered, nor on their order (one URL: :attr:`model_id`)."""
        return f"openai:{','.join(sorted(set(base_urls)))}#{self.model}{self._options_tag}"

    async def complete(self, request: VLMRequest) -> VLMResponse:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        use_json = request.json_schema is not None and self.json_mode != "off"
        if use_json:
            body["response_format"] = {"type": "json_object"}
        body.update(self.extra_body)
        client = self._clients[next(self._next) % len(self._clients)]
        started = time.perf_counter()
        try:
            # The SDK's low-level post sends our pre-encoded body as is (chat.completions.create
            # would first walk every message part, base64 images included, to transform it, then
            # serialise it again) and still raises its typed errors; we read the JSON ourselves.
            raw = await client.post(
                "/chat/completions",
                content=encode_chat_body(request.messages, **body),
                options={"headers": {"Content-Type": "application/json"}},
                cast_to=bytes,
            )
        except openai.BadRequestError as exc:
            if use_json and self.json_mode == "auto" and "response_format" in str(exc).lower():
                self.json_mode = "off"  # this server does not take it; stop asking
                return await self.complete(request)
            raise BackendError(f"request rejected (400): {_message(exc)}", status=400) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            raise BackendError(
                f"server answered {status}: {_message(exc)}",
                retryable=retryable_status(status),
                retry_after=_retry_after(exc.response),
                status=status,
            ) from exc
        except openai.APITimeoutError as exc:
            raise BackendError(f"timed out after {self.timeout:g}s", retryable=True, fault="timeout") from exc
        except openai.APIConnectionError as exc:
            raise BackendError(f"connection failed: {exc.__cause__ or exc}", retryable=True, fault="connect") from exc
        except openai.APIError as exc:  # malformed bodies and the like
            raise BackendError(f"bad response: {exc}", retryable=True, fault="bad_response") from exc
        latency = time.perf_counter() - started
        return _read_completion(raw, self.model, latency)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()


def retryable_status(status: int) -> bool:
    """Whether a server's status says trying again may help: timeout, conflict, rate limit, 5xx."""
    return status in (408, 409, 429) or status >= 500


def _read_completion(raw: bytes, model: str, latency: float) -> VLMResponse:
    """Read a chat-completion body.

    ``content`` may be text, a list of content parts (their text is joined) or, from a
    misbehaving server, anything else (kept as its JSON text for the parser to refuse); an answer
    given only as a tool call is read from the call's JSON arguments. Bytes that are not UTF-8
    are read with U+FFFD in their place.

    Raises :class:`BackendError`: not retryable for an error object sent with status 200 (unless
    its code is a retryable status), a refusal, or a content filter's finish, each named; retryable
    for a body that is no chat completion at all.
    """
    try:
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:  # bytes that are not UTF-8: keep what can be read
            data = json.loads(raw.decode("utf-8", "replace"))
        error = _error_object(data)
        if error is not None:
            message, code = error
            raise BackendError(f"server answered 200 with an error: {message}",
                               retryable=code is not None and retryable_status(code), status=code)
        choice = data["choices"][0]
        message_body = choice["message"]
        content = message_body.get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
        preview = raw[:200].decode("utf-8", "replace")
        raise BackendError(f"not a chat completion ({type(exc).__name__}): {preview!r}", retryable=True,
                           fault="bad_response") from exc
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    finish = choice.get("finish_reason")
    reported = data.get("model")
    text = _content_text(content)
    if not text.strip():
        text = _tool_call_text(message_body.get("tool_calls")) or text
    _refuse_withheld(message_body.get("refusal"), finish, text)
    return VLMResponse(
        text=text,
        usage=Usage(prompt_tokens=_token_count(usage.get("prompt_tokens")),
                    completion_tokens=_token_count(usage.get("completion_tokens"))),
        model=reported if isinstance(reported, str) and reported else model,
        finish_reason=finish if isinstance(finish, str) else None,
        latency_s=latency,
    )


def _error_object(data: Any) -> tuple[str, int | None] | None:
    """``(message, status code or None)`` of a body that is an error instead of a completion:
    ``{"error": {"message": ..., "code": ...}}``, ``{"error": "..."}`` or vLLM's
    ``{"object": "error", "message": ..., "code": ...}``; ``None`` for anything else."""
    if not isinstance(data, dict) or "choices" in data:
        return None
    if isinstance(data.get("error"), dict):
        error = data["error"]
    elif isinstance(data.get("error"), str):
        error = {"message": data["error"]}
    elif data.get("object") == "error":
        error = data
    else:
        return None
    message = error.get("message") or error.get("type") or "no message"
    code = error.get("code", data.get("code"))
    if isinstance(code, str) and code.isdigit() and len(code) == 3:
        code = int(code)
    status = code if isinstance(code, int) and not isinstance(code, bool) and 100 <= code < 600 else None
    return valid_utf8(clip(" ".join(str(message).split()), 500)), status


def _tool_call_text(calls: Any) -> str:
    """The JSON arguments of an answer given as tool calls (joined), ``""`` when there are none."""
    if not isinstance(calls, list):
        return ""
    texts = []
    for call in calls[:8]:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, str):
            texts.append(arguments)
        elif isinstance(arguments, dict):
            try:
                texts.append(json.dumps(arguments, ensure_ascii=False))
            except (TypeError, ValueError, RecursionError):
                continue
    return "\n".join(texts)


def _refuse_withheld(refusal: Any, finish: Any, text: str) -> None:
    """Name an answer the model or the server withheld (a refusal, a content filter), which would
    otherwise read as an empty answer; not retryable: the same request gets the same answer."""
    if isinstance(refusal, str) and refusal.strip() and not text.strip():
        raise BackendError(f"the model refused to answer: {valid_utf8(clip(refusal.strip(), 300))!r}")
    if finish == "content_filter":
        cut = f" after {len(text):,} characters" if text else ""
        raise BackendError(f"the server's content filter withheld the answer{cut} (finish_reason 'content_filter')")


def _content_text(content: Any) -> str:
    """The text of a message's ``content`` (never raises)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = [p.get("text") for p in content if p.get("type") in ("text", "output_text")]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(texts)
    try:
        return json.dumps(content, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return repr(type(content))


def _token_count(value: Any) -> int:
    """A token count from a server's ``usage``; anything but a sane count is 0."""
    if isinstance(value, str) and value.strip().isdigit() and len(value) <= 12:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if value != value or value < 0 or value > 2**40:  # NaN, negative, absurd
        return 0
    return int(value)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
