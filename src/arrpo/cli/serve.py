"""``arrpo serve``: run the reward service (needs the ``serve`` extra: FastAPI and uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from arrpo.cli._common import (
    LogLevelOption,
    console,
    fail,
    with_judge_options,
    with_vlm_options,
)
from arrpo.judge_settings import JudgeSettings
from arrpo.server.protocol import DEFAULT_LIMITS
from arrpo.vlm.settings import BackendSettings
from arrpo.vocab import Pairing

TOKEN_ENV = "ARRPO_SERVE_TOKEN"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def parse_rubric_option(value: str):
    """``t2i=FILE``, ``edit=FILE`` or ``FILE`` (task read from the rubric) → (task, Rubric).

    Raises :class:`arrpo.errors.BadInputError` (a ``ValueError``) naming the option.
    """
    from arrpo.errors import BadInputError
    from arrpo.rubric import Rubric

    task, sep, path = value.partition("=")
    if not sep:
        task, path = "", value
    if task and task not in ("t2i", "edit"):
        raise BadInputError(f"--rubric {value}: the task before '=' must be t2i or edit")
    try:
        rubric = Rubric.load(Path(path))
    except FileNotFoundError:
        raise BadInputError(f"--rubric {value}: no such file {path}", kind="not_found") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"--rubric {value}: not a rubric file ({exc})") from None
    task = task or rubric.task
    if task not in ("t2i", "edit"):
        raise BadInputError(f"--rubric {value}: the rubric names no task; write t2i={path} or edit={path}")
    return task, rubric


@with_vlm_options()
@with_judge_options(JudgeSettings)
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to bind. Anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8080,
    rubric: Annotated[Optional[list[str]], typer.Option("--rubric", help="Task rubric: t2i=FILE, edit=FILE or FILE (repeatable).")] = None,
    prompt_rubrics: Annotated[bool, typer.Option("--prompt-rubrics", help="Enable rubric 'prompt' (zero-shot rubric per prompt, cached).")] = False,
    pairing: Annotated[Pairing, typer.Option("--pairing", help="Default pairing of a group: all_pairs | random_pairs | tournament.")] = "all_pairs",
    token_env: Annotated[str, typer.Option("--token-env", help="Environment variable holding the bearer token.")] = TOKEN_ENV,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.01, help="Largest request body in MiB.")] = DEFAULT_LIMITS.max_body_bytes / (1024 * 1024),
    max_images: Annotated[int, typer.Option("--max-images", min=2, help="Most images in one group.")] = DEFAULT_LIMITS.max_images,
    max_image_pixels: Annotated[int, typer.Option("--max-image-pixels", min=1, help="Largest image (width x height) accepted.")] = DEFAULT_LIMITS.max_image_pixels,
    max_pixels: Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Downscale images above this many pixels before judging.")] = None,
    max_pending: Annotated[Optional[int], typer.Option("--max-pending", min=1, help="Judge calls admitted at once (default 4 x --max-concurrency x endpoints); beyond: 503.")] = None,
    graceful_timeout: Annotated[float, typer.Option("--graceful-timeout", min=0.0, help="Seconds to let in-flight requests finish on shutdown.")] = 60.0,
    log_level: LogLevelOption = "info",
    *,
    judge_settings: JudgeSettings,
    vlm: BackendSettings,
) -> None:
    """Serve rubric-conditioned rewards over HTTP (JSON, base64 images) for RL trainers.

    arrpo serve --endpoint http://localhost:8000/v1 --model Qwen/Qwen3-VL-8B-Instruct --rubric t2i=t2i.json

    The token is read from $ARRPO_SERVE_TOKEN (or the variable --token-env names; never from the
    command line); without one the service only binds to loopback. The judge options are the
    service's defaults (a request may choose its own order, docs/serving.md); an evidence-only
    judge (--evidence ocr --evidence-only) opens no model. Endpoints: POST /v1/compare, POST /v1/group_rewards,
    GET /health, GET /metrics, docs at /docs. See docs/serving.md.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise fail("arrpo serve needs the serve extra: pip install 'arrpo[serve]'") from None
    from arrpo.server import ServiceConfig, create_app, run_server
    from arrpo.server.auth import check_bind
    from arrpo.vlm.settings import open_judge_backend

    if prompt_rubrics and not judge_settings.asks_model:
        raise fail("--prompt-rubrics needs a model to write the rubrics; an --evidence-only judge opens none")
    token = os.environ.get(token_env) or None
    check_bind(host, token, token_env=token_env)
    task_rubrics = {}
    for value in rubric or []:
        task, loaded = parse_rubric_option(value)
        task_rubrics[task] = loaded
    config = ServiceConfig(
        token=token, max_body_bytes=int(max_body_mb * 1024 * 1024), max_images=max_images,
        max_image_pixels=max_image_pixels, max_pixels=max_pixels,
        max_pending=max_pending if max_pending is not None else 4 * vlm.total_concurrency(),
        judge=judge_settings, task_rubrics=task_rubrics, pairing=pairing,
    )
    backend = open_judge_backend(vlm, judge_settings)
    writer = None
    if prompt_rubrics:
        from arrpo.server.rubrics import default_prompt_writer

        writer = default_prompt_writer(backend)
    app = create_app(backend, config, prompt_rubric_writer=writer)
    auth = "bearer token required" if token else "no auth (loopback only)"
    console.print(f"arrpo reward service on http://{host}:{port} ({auth}); docs at /docs", highlight=False)
    run_server(app, host, port, token=token, graceful_timeout=graceful_timeout, log_level=log_level)
