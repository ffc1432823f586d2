"""How a user says which VLM to use, and the one function that opens it.

Every command (judge, rubric, eval, serve, train) takes the same settings, from command-line
options, a config file or the environment (``ARRPO_ENDPOINT``, ``ARRPO_MODEL``, ``ARRPO_API_KEY``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from arrpo.vlm.base import BackendUnavailable
from arrpo.vlm.wrappers import Metered

BackendKind = Literal["openai"]

NO_ENDPOINT_HELP = (
    "No VLM endpoint is configured. Point arrpo at any OpenAI-compatible server, e.g.\n"
    "  vllm serve Qwen/Qwen3-VL-8B-Instruct --port 8000\n"
    "  arrpo judge --endpoint http://localhost:8000/v1 --model Qwen/Qwen3-VL-8B-Instruct ...\n"
    "or set ARRPO_ENDPOINT and ARRPO_MODEL (and ARRPO_API_KEY for hosted APIs)."
)


class BackendSettings(BaseModel):
    """Which VLM to call and how. Fields left unset fall back to the environment."""

    kind: BackendKind = "openai"
    endpoint: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://localhost:8000/v1.")
    model: str | None = Field(None, description="Model name the server expects.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (default ARRPO_API_KEY, then OPENAI_API_KEY)."
    )
    timeout: float = Field(120.0, gt=0, description="Seconds per request.")
    max_concurrency: int = Field(16, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(4, ge=0, description="Retries on 429/5xx/timeouts/connection errors.")
    cache: bool = Field(True, description="Keep a response cache (SQLite).")
    cache_path: str | None = Field(None, description="Cache file; default under the user cache dir.")
    json_mode: Literal["auto", "json_object", "off"] = "auto"
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra request fields.")

    def resolved(self) -> BackendSettings:
        """A copy with endpoint/model filled from ``ARRPO_ENDPOINT``/``ARRPO_MODEL`` when unset."""
        return self.model_copy(
            update={
                "endpoint": self.endpoint or os.environ.get("ARRPO_ENDPOINT") or None,
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


def open_backend(settings: BackendSettings) -> Metered:
    """Open the backend the settings describe, with cache, retries and the concurrency limit.

    Raises:
        BackendUnavailable: nothing usable is configured; the message says what to do.
    """
    from arrpo.vlm import build_backend

    settings = settings.resolved()
    if not settings.endpoint:
        raise BackendUnavailable(NO_ENDPOINT_HELP)
    if not settings.model:
        raise BackendUnavailable(
            f"No model name given for {settings.endpoint}: pass --model NAME or set ARRPO_MODEL "
            "(the server's GET /v1/models lists what it serves)."
        )
    cache: str | Path | bool | None = (settings.cache_path or None) if settings.cache else False
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
