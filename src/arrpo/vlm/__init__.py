"""VLM backends and the wrappers that compose around them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arrpo.vlm.base import (
    BackendError,
    BackendUnavailable,
    ImagePart,
    Message,
    TextPart,
    VLMBackend,
    VLMRequest,
    VLMResponse,
)
from arrpo.vlm.cache import Cached, ResponseCache, default_cache_path
from arrpo.vlm.wrappers import Limited, Metered, Retrying

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "Cached",
    "ImagePart",
    "Limited",
    "Message",
    "Metered",
    "ResponseCache",
    "Retrying",
    "TextPart",
    "VLMBackend",
    "VLMRequest",
    "VLMResponse",
    "build_backend",
    "wrap_backend",
]


def wrap_backend(
    backend: VLMBackend,
    *,
    max_concurrency: int = 16,
    max_retries: int = 4,
    cache_path: str | Path | bool | None = None,
    retry_base_delay: float = 0.5,
) -> Metered:
    """Stack the standard wrappers on any backend: metering → cache → retry → limit → backend.

    ``cache_path``: a file path, ``None`` for the default user cache file, or ``False`` for no cache.
    """
    stacked: VLMBackend = Limited(backend, max_concurrency)
    stacked = Retrying(stacked, max_retries=max_retries, base_delay=retry_base_delay)
    if cache_path is not False:
        path = default_cache_path() if cache_path in (None, True) else Path(cache_path)
        stacked = Cached(stacked, ResponseCache(path))
    return Metered(stacked)


def build_backend(
    endpoint: str,
    model: str,
    *,
    api_key: str | None = None,
    timeout: float = 120.0,
    max_concurrency: int = 16,
    max_retries: int = 4,
    cache_path: str | Path | bool | None = None,
    json_mode: str = "auto",
    extra_body: dict[str, Any] | None = None,
    retry_base_delay: float = 0.5,
) -> Metered:
    """An OpenAI-compatible backend with cache, retries and a concurrency limit."""
    from arrpo.vlm.openai_compat import OpenAIBackend

    inner = OpenAIBackend(
        endpoint,
        model,
        api_key=api_key,
        timeout=timeout,
        json_mode=json_mode,  # type: ignore[arg-type]
        extra_body=extra_body,
        max_connections=max(max_concurrency, 8),
    )
    return wrap_backend(
        inner,
        max_concurrency=max_concurrency,
        max_retries=max_retries,
        cache_path=cache_path,
        retry_base_delay=retry_base_delay,
    )
