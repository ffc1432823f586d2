"""Backend for any OpenAI-compatible chat server: vLLM, SGLang, ``transformers serve``, hosted APIs.

Uses the official ``openai`` SDK with its own retries switched off: retries, caching and
concurrency limits are wrappers (:mod:`arrpo.vlm.wrappers`) so they behave the same for every
backend. This class only translates requests and classifies errors.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import httpx
import openai

from arrpo.schema import Usage
from arrpo.vlm.base import BackendError, ImagePart, Message, VLMRequest, VLMResponse

JsonMode = Literal["auto", "json_object", "off"]

#: Environment variables read for the API key, first found wins.
API_KEY_ENV = ("ARRPO_API_KEY", "OPENAI_API_KEY")


def api_key_from_env() -> str:
    """The API key from ``ARRPO_API_KEY`` or ``OPENAI_API_KEY``; ``"EMPTY"`` for local servers."""
    for name in API_KEY_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return "EMPTY"


def to_openai_messages(messages: tuple[Message, ...] | list[Message]) -> list[dict[str, Any]]:
    """Translate protocol messages to OpenAI chat format (images as base64 data URLs)."""
    out = []
    for message in messages:
        if message.role != "user" and not message.images:
            out.append({"role": message.role, "content": message.text})
            continue
        content = []
        for part in message.parts:
            if isinstance(part, ImagePart):
                content.append({"type": "image_url", "image_url": {"url": part.image.data_url}})
            else:
                content.append({"type": "text", "text": part.text})
        out.append({"role": message.role, "content": content})
    return out


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(limits=limits, timeout=timeout)
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or api_key_from_env(),
            timeout=timeout,
            max_retries=0,
            http_client=self._http,
        )

    @property
    def model_id(self) -> str:
        return f"openai:{self.base_url}#{self.model}"

    async def complete(self, request: VLMRequest) -> VLMResponse:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.messages),
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        use_json = request.json_schema is not None and self.json_mode != "off"
        if use_json:
            kwargs["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except openai.BadRequestError as exc:
            if use_json and self.json_mode == "auto" and "response_format" in str(exc).lower():
                self.json_mode = "off"  # this server does not take it; stop asking
                return await self.complete(request)
            raise BackendError(f"request rejected (400): {_message(exc)}", status=400) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            retryable = status in (408, 409, 429) or status >= 500
            raise BackendError(
                f"server answered {status}: {_message(exc)}",
                retryable=retryable,
                retry_after=_retry_after(exc.response),
                status=status,
            ) from exc
        except openai.APITimeoutError as exc:
            raise BackendError(f"timed out after {self.timeout:g}s", retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise BackendError(f"connection failed: {exc.__cause__ or exc}", retryable=True) from exc
        except openai.APIError as exc:  # malformed bodies and the like
            raise BackendError(f"bad response: {exc}", retryable=True) from exc
        latency = time.perf_counter() - started
        if not completion.choices:
            raise BackendError("response had no choices", retryable=True)
        choice = completion.choices[0]
        usage = Usage()
        if completion.usage is not None:
            usage = Usage(
                prompt_tokens=completion.usage.prompt_tokens or 0,
                completion_tokens=completion.usage.completion_tokens or 0,
            )
        return VLMResponse(
            text=choice.message.content or "",
            usage=usage,
            model=completion.model or self.model,
            finish_reason=choice.finish_reason,
            latency_s=latency,
        )

    async def aclose(self) -> None:
        await self._client.close()


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
