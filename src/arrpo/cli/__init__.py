"""The ``arrpo`` command. Each subcommand lives in its own module with a ``register(app)`` function.

Subcommand modules must import heavy libraries (torch, diffusers, ray, fastapi) inside their
command functions, never at module level, so ``arrpo --help`` and ``arrpo judge`` stay light.
"""

from __future__ import annotations

import importlib

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


for _name in COMMAND_MODULES:
    importlib.import_module(f"arrpo.cli.{_name}").register(app)


def main() -> None:
    """Entry point of the ``arrpo`` console script."""
    app()
