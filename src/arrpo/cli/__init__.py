"""The ``arrpo`` command. Each subcommand lives in its own module with a ``register(app)`` function.

Subcommand modules must import heavy libraries (torch, diffusers, ray, fastapi) inside their
command functions, never at module level, so ``arrpo --help`` and ``arrpo judge`` stay light.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import typer

app = typer.Typer(
    name="arrpo",
    help="Auto-Rubric as Reward: rubric-conditioned VLM judges and RPO training for image generators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules under ``arrpo.cli`` that add commands; add a line to register a new one.
COMMAND_MODULES = [
    "judge",
    "rubric",
    "eval",
    "train",
    "sample",
    "serve",
    "label",
    "review",
]


def _print_version(value: bool) -> None:
    if value:
        from arrpo import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Auto-Rubric as Reward: rubric-conditioned VLM judges and RPO training for image generators."""


def reporting_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so any :class:`arrpo.errors.ArrpoError` ends it with one line and exit 2.

    The one place the command line turns the project's errors into messages: commands raise,
    they do not catch and print.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from arrpo.cli._common import fail
        from arrpo.errors import ArrpoError, RunFailedError

        try:
            return command(*args, **kwargs)
        except RunFailedError as exc:
            raise fail(str(exc), code=1) from None
        except ArrpoError as exc:
            raise fail(str(exc)) from None

    return run


for _name in COMMAND_MODULES:
    importlib.import_module(f"arrpo.cli.{_name}").register(app)


def _wrap_all(group: typer.Typer) -> None:
    for command in group.registered_commands:
        if command.callback is not None:
            command.callback = reporting_errors(command.callback)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _wrap_all(sub.typer_instance)


_wrap_all(app)


def main() -> None:
    """Entry point of the ``arrpo`` console script."""
    app()
