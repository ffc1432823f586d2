"""Options and helpers shared by every ``arrpo`` subcommand."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from arrpo.vlm.settings import BackendSettings

console = Console(stderr=True)

Endpoint = Annotated[
    Optional[str],
    typer.Option("--endpoint", envvar="ARRPO_ENDPOINT", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1."),
]
Model = Annotated[Optional[str], typer.Option("--model", envvar="ARRPO_MODEL", help="Model name the server serves.")]
ApiKeyEnv = Annotated[
    Optional[str],
    typer.Option("--api-key-env", help="Environment variable with the API key (default ARRPO_API_KEY, OPENAI_API_KEY)."),
]
Timeout = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per model request.")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Model requests in flight at once.")]
Retries = Annotated[int, typer.Option("--retries", min=0, help="Retries on 429/5xx/timeouts/connection errors.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache.")]
BackendKind = Annotated[
    str,
    typer.Option("--backend", envvar="ARRPO_BACKEND",
                 help="auto | openai | transformers | vllm. auto: the --endpoint if given, else the "
                      "in-process transformers model (default Qwen/Qwen3-VL-2B-Instruct)."),
]
Device = Annotated[str, typer.Option("--device", help="In-process backends: auto | cpu | cuda | cuda:N | mps.")]
Ray = Annotated[
    Optional[str],
    typer.Option("--ray", metavar="ADDRESS",
                 help="Judge on a Ray cluster (auto = the cluster this machine is in, local = start one)."),
]
CachePath = Annotated[Optional[str], typer.Option("--cache-path", help="Response cache file (SQLite).")]


def backend_settings(
    endpoint: str | None,
    model: str | None,
    api_key_env: str | None = None,
    timeout: float = 120.0,
    concurrency: int = 16,
    retries: int = 4,
    no_cache: bool = False,
    cache_path: str | None = None,
    backend: str = "auto",
    device: str = "auto",
) -> BackendSettings:
    """Build :class:`BackendSettings` from the shared options."""
    if backend not in ("auto", "openai", "transformers", "vllm"):
        raise fail(f"--backend must be auto, openai, transformers or vllm (got {backend!r})")
    return BackendSettings(
        endpoint=endpoint,
        model=model,
        api_key_env=api_key_env,
        timeout=timeout,
        max_concurrency=concurrency,
        max_retries=retries,
        cache=not no_cache,
        cache_path=cache_path,
        kind=backend,  # type: ignore[arg-type]
        device=device,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error (no traceback) and return the Exit to raise."""
    from rich.markup import escape

    # escaped: messages contain brackets (pip install 'arrpo[vllm]') that rich would eat as markup
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
