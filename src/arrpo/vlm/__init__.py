"""VLM backends and the wrappers that compose around them."""

from __future__ import annotations

from collections.abc import Sequence
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
from arrpo.vlm.pool import EndpointPool, EndpointStats, endpoint_stats
from arrpo.vlm.wrappers import Limited, Metered, Retrying

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "Cached",
    "EndpointPool",
    "EndpointStats",
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
    "endpoint_stats",
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
    endpoint: str | Sequence[str],
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
    base_cooldown: float | None = None,
    max_cooldown: float | None = None,
) -> Metered:
    """An OpenAI-compatible backend with cache, retries and a concurrency limit.

    ``endpoint`` is one base URL or several serving the same ``model``
    (:func:`arrpo.vlm.settings.parse_endpoints` normalises and checks them): each gets its own HTTP
    client and ``max_concurrency`` requests in flight, behind one :class:`~arrpo.vlm.pool.EndpointPool`
    (least-loaded routing, cooldown and failover; ``base_cooldown``/``max_cooldown`` in seconds)
    and one cache, retry wrapper and limit of ``len(endpoints) × max_concurrency``.
    """
    from arrpo.vlm.openai_compat import OpenAIBackend
    from arrpo.vlm.pool import EndpointPool
    from arrpo.vlm.settings import parse_endpoints

    urls = parse_endpoints(endpoint)
    members = {
        url: OpenAIBackend(
            url,
            model,
            api_key=api_key,
            timeout=timeout,
            json_mode=json_mode,  # type: ignore[arg-type]
            extra_body=extra_body,
            max_connections=max(max_concurrency, 8),
        )
        for url in urls
    }
    cooldowns = {k: v for k, v in {"base_cooldown": base_cooldown, "max_cooldown": max_cooldown}.items() if v is not None}
    pool = EndpointPool(
        members, max_concurrency=max_concurrency, model_id=members[urls[0]].model_id_over(urls), **cooldowns
    )
    return wrap_backend(
        pool,
        max_concurrency=max_concurrency * len(urls),
        max_retries=max_retries,
        cache_path=cache_path,
        retry_base_delay=retry_base_delay,
    )
