"""Options and helpers shared by every ``arrpo`` subcommand."""

from __future__ import annotations

import enum
import functools
import inspect
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar, get_args, get_origin

import annotated_types
import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.text import Text

from arrpo.vlm.settings import BackendSettings
from arrpo.vocab import BackendKind, LogLevel, choices

if TYPE_CHECKING:
    from arrpo.judge_settings import AskSettings

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
MaxConcurrency = Annotated[int, typer.Option("--max-concurrency", min=1, help="Model requests in flight at once (on each endpoint).")]
MaxRetries = Annotated[int, typer.Option("--max-retries", min=0, help="Retries on 429/5xx/timeouts/connection errors.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache.")]
BackendKindOption = Annotated[
    BackendKind,
    typer.Option("--backend", envvar="ARRPO_BACKEND",
                 help="Which backend runs the model. auto: the --endpoint if given, else the "
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

#: The level of a web server's log (uvicorn's words).
LogLevelOption = Annotated[LogLevel, typer.Option("--log-level", help="What the web server logs: " + " | ".join(choices(LogLevel)) + ".")]


def backend_settings(
    endpoint: str | list[str] | None,
    model: str | None,
    api_key_env: str | None = None,
    timeout: float = 120.0,
    max_concurrency: int = 16,
    max_retries: int = 4,
    no_cache: bool = False,
    cache_path: str | None = None,
    backend: BackendKind = "auto",
    device: str = "auto",
) -> BackendSettings:
    """Build :class:`BackendSettings` from the shared options."""
    from pydantic import ValidationError

    from arrpo.errors import BadInputError, describe_validation_error

    try:
        return BackendSettings(
            endpoint=endpoint or None,
            model=model,
            api_key_env=api_key_env,
            timeout=timeout,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
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


_Judge = TypeVar("_Judge", bound="AskSettings")


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _adding_options(added: list[inspect.Parameter], target: str,
                    build: Callable[[dict[str, Any]], Any]) -> Callable[[_Command], _Command]:
    """A decorator giving a command the ``added`` options (after its own) and handing it, in their
    place, one keyword argument ``target`` = ``build(their values)``."""

    def decorate(command: _Command) -> _Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != target]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            values = {p.name: kwargs.pop(p.name, p.default) for p in added}
            return command(*args, **{target: build(values)}, **kwargs)

        parameters = [*own, *added]
        run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}  # what typer reads: the options
        return run  # type: ignore[return-value]

    return decorate


def with_vlm_options() -> Callable[[_Command], _Command]:
    """Give a command the shared VLM options and hand them to it as one ``vlm: BackendSettings``.

    The options are ``--endpoint --model --api-key-env --timeout --max-concurrency --max-retries --no-cache
    --cache-path --backend --device``, added to the end of the command's options; the decorated
    function declares ``vlm`` instead of them::

        @with_vlm_options()
        def write_command(task: TaskOption = "t2i", *, vlm: BackendSettings) -> None: ...
    """
    return _adding_options(_vlm_options(), "vlm", lambda values: backend_settings(**values))


def _vlm_options() -> list[inspect.Parameter]:
    return [
        _option("endpoint", Endpoint, None), _option("model", Model, None), _option("api_key_env", ApiKeyEnv, None),
        _option("timeout", Timeout, 120.0), _option("max_concurrency", MaxConcurrency, 16), _option("max_retries", MaxRetries, 4),
        _option("no_cache", NoCache, False), _option("cache_path", CachePath, None),
        _option("backend", BackendKindOption, "auto"), _option("device", Device, "auto"),
    ]


def _optional(annotation: Any) -> Any:
    """``Annotated[T, option]`` as ``Annotated[Optional[T], option]``."""
    return Annotated[(Optional[get_args(annotation)[0]], *annotation.__metadata__)]  # type: ignore[misc]


#: The :class:`BackendSettings` key of each VLM option whose name differs from it.
VLM_OPTION_KEYS = {"backend": "kind"}


def with_vlm_overrides() -> Callable[[_Command], _Command]:
    """The options of :func:`with_vlm_options`, each optional, handed to the command as
    ``vlm_overrides``: the :class:`BackendSettings` keys given on the command line and their values
    (``--no-cache``: ``cache: false``), for a command whose backend settings come from a file the
    command line overrides (``arrpo eval``'s judges YAML)."""
    added = [
        p if p.default is False else p.replace(annotation=_optional(p.annotation), default=None) for p in _vlm_options()
    ]

    def overrides(values: dict[str, Any]) -> dict[str, Any]:
        given = {VLM_OPTION_KEYS.get(name, name): value for name, value in values.items()
                 if value not in (None, [], ()) and name != "no_cache"}
        if values["no_cache"]:
            given["cache"] = False
        return given

    return _adding_options(added, "vlm_overrides", overrides)


def judge_option_name(field: str) -> str:
    """The command-line spelling of a judge setting: its config key in kebab case (``on_disagree`` →
    ``--on-disagree``)."""
    return "--" + field.replace("_", "-")


def judge_options(model: type[AskSettings], *, exclude: Collection[str] = (),
                  defaults: Mapping[str, Any] | None = None) -> list[inspect.Parameter]:
    """One typer option for each field of ``model`` (:class:`~arrpo.judge_settings.AskSettings` or
    :class:`~arrpo.judge_settings.JudgeSettings`) but ``exclude``: named :func:`judge_option_name`,
    typed by the field (a vocabulary becomes a choice click checks and lists), its bound the
    field's, its default the field's (or the command's own in ``defaults``, said in the help), its
    help the field's description. The one declaration of every judge option, so the command line
    cannot drift from the settings."""
    defaults = defaults or {}
    return [_judge_option(name, field, defaults.get(name, field.default))
            for name, field in model.model_fields.items() if name not in exclude]


def _judge_option(name: str, field: FieldInfo, default: Any) -> inspect.Parameter:
    annotation = field.annotation
    kwargs: dict[str, Any] = {"help": field.description}
    if default != field.default:
        kwargs["help"] = f"{field.description} (Here {default!r}; the setting's default is {field.default!r}.)"
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge):
            kwargs["min"] = bound.ge
    if get_origin(annotation) is tuple:  # a list of words: a repeatable option, each word a choice
        words = choices(get_args(annotation)[0])
        vocabulary = enum.Enum(name, {word: word for word in words}, type=str)  # type: ignore[misc]
        annotation, default = Optional[list[vocabulary]], None  # type: ignore[valid-type]
        kwargs["metavar"] = "|".join(words)
        kwargs["help"] = f"{field.description} Repeat it for several."
    elif annotation == int | None:
        annotation = Optional[int]
    return _option(name, Annotated[annotation, typer.Option(judge_option_name(name), **kwargs)], default)


def with_judge_options(model: type[AskSettings], *, exclude: Collection[str] = (),
                       defaults: Mapping[str, Any] | None = None) -> Callable[[_Command], _Command]:
    """Give a command the :func:`judge_options` of ``model`` and hand them to it as one
    ``judge_settings: model`` (checked: a bad combination ends the command naming the setting)."""
    return _adding_options(judge_options(model, exclude=exclude, defaults=defaults), "judge_settings",
                           lambda values: judge_settings_from_options(model, values))


def judge_settings_from_options(model: type[_Judge], values: dict[str, Any]) -> _Judge:
    """The settings ``model`` holds for the parsed values of its :func:`judge_options` (a repeatable
    vocabulary option's enum members become its words; one not given: the field's default)."""
    parsed = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = tuple(getattr(item, "value", item) for item in value)
        elif value is None and get_origin(model.model_fields[name].annotation) is tuple:
            value = ()
        parsed[name] = value
    return settings_from_options(model, **parsed)


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
