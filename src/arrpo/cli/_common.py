"""Options and helpers shared by every ``arrpo`` subcommand."""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Optional, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.text import Text

from arrpo.text import DEFAULT_MAX_ANSWER_CHARS
from arrpo.vlm.settings import BackendSettings
from arrpo.vocab import EvidenceKind, OcrPolicy, PromptLayout, choices

#: Messages and tables go to stderr. Piped or in CI logs (not a terminal, no COLUMNS), rich would
#: fall back to 80 columns and squash the learn / eval tables into "ver… fir…"; use a wide line.
console = Console(stderr=True, width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 160)

Endpoint = Annotated[
    Optional[list[str]],
    typer.Option("--endpoint", envvar="ARRPO_ENDPOINT",
                 help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1. Repeat it (or give "
                      "ARRPO_ENDPOINT a comma-separated list) for several servers of the same model: "
                      "least-loaded routing, failover."),
]
Model = Annotated[Optional[str], typer.Option("--model", envvar="ARRPO_MODEL", help="Model name the server serves.")]
ApiKeyEnv = Annotated[
    Optional[str],
    typer.Option("--api-key-env", help="Environment variable with the API key (default ARRPO_API_KEY, OPENAI_API_KEY)."),
]
Timeout = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per model request.")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Model requests in flight at once (on each endpoint).")]
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
MaxInvalidShare = Annotated[
    float,
    typer.Option("--max-invalid-share", min=0.0, max=1.0,
                 help="Exit with status 1 when more than this share of the verdicts is invalid "
                      "(a run with every verdict invalid always fails)."),
]

MaxAnswerChars = Annotated[
    int,
    typer.Option("--max-answer-chars", min=1,
                 help="Most characters of a model answer a verdict keeps (raw: beginning and end; reason: "
                      f"beginning), with a marker saying how much was cut (default {DEFAULT_MAX_ANSWER_CHARS:,})."),
]

#: The prompt layout and evidence settings of a judge (arrpo.judge_settings.AskSettings), by the same names.
PromptLayoutOption = Annotated[PromptLayout, typer.Option("--prompt-layout", help="authors | cached (docs/judging.md).")]
EvidenceOption = Annotated[  # words checked by the settings (typer lists no Literal items)
    Optional[list[str]], typer.Option("--evidence", metavar="KIND", help=f"Tool evidence: {' | '.join(choices(EvidenceKind))} (the ocr extra)."),
]
EvidenceOnlyOption = Annotated[bool, typer.Option("--evidence-only", help="Decide from the evidence alone (no model).")]
OcrPolicyOption = Annotated[OcrPolicy, typer.Option("--ocr-policy", help="evidence | tiebreak | override.")]


def backend_settings(
    endpoint: str | list[str] | None,
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
    from pydantic import ValidationError

    from arrpo.errors import BadInputError, describe_validation_error

    try:
        return BackendSettings(
            endpoint=endpoint or None,
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
    except ValidationError as exc:  # a bad --endpoint list
        message = describe_validation_error(exc)
        raise BadInputError(f"--{message}" if message.startswith("endpoint: ") else message) from None


_Settings = TypeVar("_Settings", bound=BaseModel)


def settings_from_options(model: type[_Settings], **values: Any) -> _Settings:
    """``model(**values)`` from command-line values (e.g. :class:`arrpo.judge_settings.JudgeSettings`);
    a value the model refuses ends the command with one line naming the setting (exit 2)."""
    from arrpo.errors import describe_validation_error

    try:
        return model(**values)
    except ValidationError as exc:
        raise fail(describe_validation_error(exc)) from None


_Command = TypeVar("_Command", bound=Callable[..., Any])


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def with_vlm_options(*, local: bool = False) -> Callable[[_Command], _Command]:
    """Give a command the shared VLM options and hand them to it as one ``vlm: BackendSettings``.

    The options are ``--endpoint --model --api-key-env --timeout --concurrency --retries --no-cache
    --cache-path`` (plus ``--backend --device`` with ``local=True``: in-process models), added to the
    end of the command's options; the decorated function declares ``vlm`` instead of them::

        @with_vlm_options()
        def write_command(task: TaskOption = "t2i", *, vlm: BackendSettings) -> None: ...
    """
    added = [
        _option("endpoint", Endpoint, None), _option("model", Model, None), _option("api_key_env", ApiKeyEnv, None),
        _option("timeout", Timeout, 120.0), _option("concurrency", Concurrency, 16), _option("retries", Retries, 4),
        _option("no_cache", NoCache, False), _option("cache_path", CachePath, None),
    ]
    if local:
        added += [_option("backend", BackendKind, "auto"), _option("device", Device, "auto")]

    def decorate(command: _Command) -> _Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != "vlm"]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            options = {p.name: kwargs.pop(p.name, p.default) for p in added}
            return command(*args, vlm=backend_settings(**options), **kwargs)

        parameters = [*own, *added]
        run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}  # what typer reads: the options
        return run  # type: ignore[return-value]

    return decorate


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error (no traceback) and return the Exit to raise."""
    from rich.markup import escape

    # escaped: messages contain brackets (pip install 'arrpo[vllm]') that rich would eat as markup
    console.print(f"[bold red]error:[/] {escape(terminal_text(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def say(text: str, *, to: Console | None = None, soft_wrap: bool = False) -> None:
    """Print ``text`` that may hold model output, file names or dataset fields: never read as rich
    markup (a ``[/bold]`` in a model's answer would raise ``MarkupError``), never highlighted, with
    control characters shown escaped (:func:`terminal_text`)."""
    (to or console).print(terminal_text(text), markup=False, highlight=False, soft_wrap=soft_wrap)


def cell(value: object) -> Text:
    """A rich table cell (or title) showing ``value`` as plain text: no markup, control characters escaped."""
    return Text(terminal_text(str(value)))


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_text(text: str) -> str:
    """``text`` made safe to print: what UTF-8 cannot hold (a lone surrogate) becomes ``\\udXXX``,
    and control characters other than newline and tab (an ANSI escape in a model's reason could
    clear or rewrite the user's terminal) become ``\\xNN``."""
    printable = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", printable)


def common_cause(reasons: Sequence[str]) -> tuple[str, int]:
    """The most frequent of ``reasons`` once paths and long numbers are blanked out, with its count."""
    counts = Counter(_generic(r) for r in reasons)
    return counts.most_common(1)[0] if counts else ("", 0)


def _generic(reason: str) -> str:
    text = re.sub(r"\S*/\S*", "<path>", " ".join(reason.split())[:300])
    return re.sub(r"\d+\.\d+|\d{4,}", "N", text)[:160]  # sizes, times; keeps statuses like 500


def check_invalid_share(total: int, invalid_reasons: Sequence[str], max_share: float, what: str) -> None:
    """Raise :class:`arrpo.errors.RunFailedError` (exit 1) when the run's verdicts are mostly invalid.

    Fails when every one of ``total`` verdicts is invalid, or more than ``max_share`` of them; the
    message names the most common cause (server down, images missing, ...).
    """
    from arrpo.errors import RunFailedError

    invalid = len(invalid_reasons)
    if total == 0 or invalid == 0 or (invalid < total and invalid / total <= max_share):
        return
    cause, count = common_cause(invalid_reasons)
    raise RunFailedError(
        f"{invalid} of {total} {what} are invalid ({invalid / total:.0%}, over --max-invalid-share "
        f"{max_share:.0%}); most common cause ({count}x): {cause}"
    )
