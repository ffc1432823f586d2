"""How a user says which VLM to use, and the one function that opens it.

Every command (judge, rubric, eval, serve, train) takes the same settings, from command-line
options, a config file or the environment (``ARRPO_ENDPOINT``, ``ARRPO_MODEL``, ``ARRPO_API_KEY``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arrpo.errors import BadInputError
from arrpo.vlm.base import BackendUnavailable
from arrpo.vlm.wrappers import Metered
from arrpo.vocab import BackendKind, JsonMode

if TYPE_CHECKING:
    from arrpo.judge_settings import AskSettings

NO_ENDPOINT_HELP = (
    "No VLM endpoint is configured. Point arrpo at any OpenAI-compatible server, e.g.\n"
    "  vllm serve Qwen/Qwen3-VL-8B-Instruct --port 8000\n"
    "  arrpo judge --endpoint http://localhost:8000/v1 --model Qwen/Qwen3-VL-8B-Instruct ...\n"
    "or set ARRPO_ENDPOINT and ARRPO_MODEL (and ARRPO_API_KEY for hosted APIs)."
)


class BackendSettings(BaseModel):
    """Which VLM to call and how. Fields left unset fall back to the environment; an unknown key is
    refused, naming it and the allowed ones (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid")

    kind: BackendKind = Field(
        "auto",
        description="openai (an HTTP endpoint), transformers (in-process), vllm (offline vLLM); "
        "auto: openai when an endpoint is set, else transformers with the default local model.",
    )
    endpoint: str | list[str] | None = Field(
        None,
        description="OpenAI-compatible base URL, e.g. http://localhost:8000/v1; several servers of the same "
        "model: a list (or one string, comma-separated). Requests go to the least-loaded one; one that "
        "fails cools down and its requests move to the others (docs/backends.md).",
    )
    model: str | None = Field(None, description="Model name the server expects.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (default ARRPO_API_KEY, then OPENAI_API_KEY)."
    )
    timeout: float = Field(120.0, gt=0, description="Seconds per request.")
    max_concurrency: int = Field(16, ge=1, description="Requests in flight at once (on each endpoint).")
    max_retries: int = Field(4, ge=0, description="Retries on 429/5xx/timeouts/connection errors.")
    cache: bool = Field(True, description="Keep a response cache (SQLite).")
    cache_path: str | None = Field(None, description="Cache file; default under the user cache dir.")
    json_mode: JsonMode = "auto"
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra request fields.")
    device: str = Field("auto", description="In-process backends: auto | cpu | cuda | cuda:N | mps.")
    dtype: str = Field("auto", description="In-process backends: auto | float32 | bfloat16 | float16.")
    max_batch_size: int = Field(8, ge=1, description="In-process backends: requests per generate call.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        """Words the refusal ``extra="forbid"`` declares: the key, the closest allowed one and every
        allowed one (``endpiont`` → did you mean ``endpoint``?). The one check of backend keys:
        every config that holds backend settings (eval, RPO) holds this model."""
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            unknown = [str(key) for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(unknown_keys_message(unknown, allowed))
        return data

    @field_validator("endpoint", mode="before")
    @classmethod
    def _normal_endpoint(cls, value: Any) -> Any:
        return normal_endpoint(value)

    def endpoints(self) -> list[str]:
        """The endpoint URLs set here (not from the environment), normalised; ``[]`` when unset."""
        return parse_endpoints(self.endpoint) if self.endpoint else []

    def total_concurrency(self) -> int:
        """Requests in flight at once over all endpoints: ``max_concurrency`` on each endpoint (the
        environment's included), or ``max_concurrency`` for an in-process model. Callers that keep
        work queued for the backend size their queue by this, so every endpoint is kept busy."""
        resolved = self.resolved()
        if resolved.resolved_kind() != "openai" or not resolved.endpoint:
            return self.max_concurrency
        return self.max_concurrency * len(resolved.endpoints())

    def resolved_kind(self) -> Literal["openai", "transformers", "vllm"]:
        """The backend kind to open: ``auto`` becomes ``openai`` with an endpoint, else ``transformers``."""
        if self.kind != "auto":
            return self.kind
        return "openai" if (self.endpoint or os.environ.get("ARRPO_ENDPOINT")) else "transformers"

    def resolved(self) -> BackendSettings:
        """A copy with endpoint/model filled from ``ARRPO_ENDPOINT``/``ARRPO_MODEL`` when unset."""
        return self.model_copy(
            update={
                "endpoint": normal_endpoint(self.endpoint or os.environ.get("ARRPO_ENDPOINT") or None),
                "model": self.model or os.environ.get("ARRPO_MODEL") or None,
            }
        )

    def api_key(self) -> str | None:
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise BackendUnavailable(f"environment variable {self.api_key_env} is not set")
            return value
        return None


def parse_endpoints(value: str | Sequence[str] | None) -> list[str]:
    """The endpoint URLs ``value`` names, normalised, in the order given.

    A string is one URL or several separated by commas (``ARRPO_ENDPOINT=http://a:8000/v1,http://b:8000/v1``);
    a list holds URLs (each may itself be comma-separated, so a repeated ``--endpoint`` and the
    environment variable read alike). Each URL loses surrounding space and trailing slashes, and
    its scheme and host are lower-cased, so ``http://A:8000/v1/`` and ``http://a:8000/v1`` are one.

    Raises:
        BadInputError: no URL at all, a URL that is not ``http(s)://HOST[:PORT][/PATH]``, or one
            server given twice (a repeat is almost always a typo for another port or host, and
            quietly dropping it would run the job on fewer servers than planned).
    """
    items = [value] if isinstance(value, str) else list(value or [])
    if any(not isinstance(item, str) for item in items):
        raise BadInputError(f"an endpoint must be a URL string (got {value!r})")
    given = [piece.strip() for item in items for piece in item.split(",") if piece.strip()]
    if not given:
        raise BadInputError("the endpoint list is empty; give at least one URL (or leave the setting out)")
    seen: dict[str, str] = {}
    for raw in given:
        url = _normal_url(raw)
        if url in seen:
            also = f" (as {seen[url]!r} and {raw!r})" if seen[url] != raw else ""
            raise BadInputError(f"the endpoint list has {url} twice{also}; give each server once")
        seen[url] = raw
    return list(seen)


def normal_endpoint(value: Any) -> Any:
    """An ``endpoint`` setting in its normal form: ``None`` (unset; ``""`` too), one URL as a
    string, several as a list (:func:`parse_endpoints`); anything else is left for pydantic to refuse."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, list, tuple)):
        return value
    urls = parse_endpoints(value)
    return urls[0] if len(urls) == 1 else urls


def _normal_url(raw: str) -> str:
    """``raw`` as the one spelling of its endpoint, or a :class:`BadInputError` saying what is wrong."""
    shape = "write it as http://HOST:PORT/v1"
    if any(c.isspace() for c in raw):
        raise BadInputError(f"endpoint {raw!r} contains a space; {shape}")
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("http", "https"):
        has = f"scheme {parts.scheme!r}" if parts.scheme and "//" in raw else "no http:// or https://"
        raise BadInputError(f"endpoint {raw!r} is not an HTTP URL ({has}); {shape}")
    if not parts.hostname:
        raise BadInputError(f"endpoint {raw!r} names no host; {shape}")
    try:
        port = parts.port
    except ValueError:
        raise BadInputError(f"endpoint {raw!r} has a port that is not a number from 0 to 65535; {shape}") from None
    if parts.fragment or raw.endswith("#"):
        raise BadInputError(f"endpoint {raw!r} has a '#' fragment, which no server reads; {shape}")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"  # IPv6
    netloc = (parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else "") + host
    if port is not None and (parts.scheme.lower(), port) not in (("http", 80), ("https", 443)):
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{netloc}{path}{query}"


def unknown_keys_message(unknown: list[str], allowed: list[str]) -> str:
    """``unknown backend setting 'endpiont' (did you mean 'endpoint'?); allowed: ...``."""
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        named.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    noun = "setting" if len(unknown) == 1 else "settings"
    return f"unknown backend {noun} {', '.join(named)}; allowed: {', '.join(allowed)}"


def open_backend(settings: BackendSettings) -> Metered:
    """Open the backend the settings describe, with cache, retries and the concurrency limit.

    With no endpoint configured this is the in-process transformers backend with
    :data:`~arrpo.vlm.transformers_local.DEFAULT_LOCAL_MODEL`; in-process models are loaded here,
    so a missing model is reported before any work starts.

    Raises:
        BackendUnavailable: nothing usable is configured; the message says what to do.
    """
    from arrpo.vlm import build_backend, wrap_backend

    settings = settings.resolved()
    kind = settings.resolved_kind()
    cache: str | Path | bool | None = (settings.cache_path or None) if settings.cache else False
    if kind in ("transformers", "vllm"):
        local = _open_local(kind, settings)
        try:
            local.load()
        except BackendUnavailable as exc:
            if settings.kind == "auto" and not settings.model:
                raise BackendUnavailable(
                    "No VLM endpoint is configured, so arrpo tried its in-process default model.\n" + str(exc)
                ) from exc
            raise
        return wrap_backend(
            local, max_concurrency=settings.max_concurrency, max_retries=settings.max_retries, cache_path=cache
        )
    if not settings.endpoint:
        raise BackendUnavailable(NO_ENDPOINT_HELP)
    if not settings.model:
        raise BackendUnavailable(
            f"No model name given for {', '.join(settings.endpoints())}: pass --model NAME or set ARRPO_MODEL "
            "(the server's GET /v1/models lists what it serves)."
        )
    return build_backend(
        settings.endpoint,
        settings.model,
        api_key=settings.api_key(),
        timeout=settings.timeout,
        max_concurrency=settings.max_concurrency,
        max_retries=settings.max_retries,
        cache_path=cache,
        json_mode=settings.json_mode,
        extra_body=settings.extra_body or None,
    )


def open_judge_backend(settings: BackendSettings, judge: AskSettings) -> Metered | None:
    """The backend of a judge with the ``judge`` settings: :func:`open_backend`, or ``None`` when
    the judge asks no model (``evidence_only``: it decides from OCR evidence alone), so such a judge
    needs no endpoint, model or local weights. The one place every command makes this decision."""
    return open_backend(settings) if judge.asks_model else None


def _open_local(kind: str, settings: BackendSettings) -> Any:
    """The unwrapped in-process backend (transformers or offline vLLM) for ``settings``."""
    template_kwargs = settings.extra_body.get("chat_template_kwargs")
    if kind == "transformers":
        from arrpo.vlm.transformers_local import DEFAULT_LOCAL_MODEL, TransformersBackend

        return TransformersBackend(
            settings.model or DEFAULT_LOCAL_MODEL,
            device=settings.device,
            dtype=settings.dtype,
            max_batch_size=settings.max_batch_size,
            chat_template_kwargs=template_kwargs,
        )
    from arrpo.vlm.vllm_offline import VLLMBackend

    if not settings.model:
        raise BackendUnavailable("--backend vllm needs --model (a hub id or a local folder)")
    return VLLMBackend(settings.model, dtype=settings.dtype, chat_template_kwargs=template_kwargs)
