"""The command line's one rule (docs/cli.md): one spelling, one type and one meaning per option
across commands; the VLM options on every command that talks to a VLM; every judge setting, named
as its key, on every command that judges; every ``arrpo …`` line of the docs parses."""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from pathlib import Path

import pytest
import typer
from typer._click.core import Command, Parameter  # this typer carries its own click
from typer._click.exceptions import UsageError

from arrpo.cli import app
from arrpo.cli._common import VLM_OPTION_KEYS, judge_option_name
from arrpo.judge_settings import AskSettings, JudgeSettings
from arrpo.vlm.settings import BackendSettings

ROOT = Path(__file__).resolve().parents[2]
VLM_OPTIONS = ["--endpoint", "--model", "--api-key-env", "--timeout", "--max-concurrency", "--max-retries", "--no-cache",
               "--cache-path", "--backend", "--device"]
#: The commands that talk to a VLM.
VLM_COMMANDS = {"judge", "eval", "serve", "rubric write", "rubric learn", "rubric validate"}
#: The commands that judge, and the settings they take as options (eval's judges are in judges.yaml).
JUDGING_COMMANDS = {"judge": JudgeSettings, "serve": JudgeSettings, "rubric validate": AskSettings,
                    "rubric learn": AskSettings}
#: Options spelled alike whose value is written differently, each with the reason.
SHAPES_DIFFER = {
    "--rubric": "serve holds one rubric per task (TASK=FILE, repeatable); judge takes one file",
}


def _commands() -> dict[str, Command]:
    """Every leaf command by its path (``rubric learn``)."""
    found: dict[str, Command] = {}

    def walk(command: Command, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found[path] = command
            return
        for name, sub in subcommands.items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


COMMANDS = _commands()


def _options(command: Command) -> dict[str, Parameter]:
    params = command.get_params(command.context_class(command))
    return {p.opts[0]: p for p in params
            if p.opts[0].startswith("--") and p.opts[0] != "--help" and not getattr(p, "hidden", False)}


def test_one_option_name_has_one_type_everywhere():
    seen: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, command in COMMANDS.items():
        for name, param in _options(command).items():
            shape = (str(param.bare_type()), param.multiple, getattr(param, "is_flag", False))
            seen[name][shape].append(path)
    differing = {name: dict(shapes) for name, shapes in seen.items() if len(shapes) > 1 and name not in SHAPES_DIFFER}
    assert not differing, f"one option name, several types: {differing}"


def test_every_vlm_command_has_the_vlm_options_with_one_help():
    with_endpoint = {path for path, command in COMMANDS.items() if "--endpoint" in _options(command)}
    assert with_endpoint == VLM_COMMANDS
    for name in VLM_OPTIONS:
        helps = {_options(COMMANDS[path])[name].help for path in VLM_COMMANDS}
        assert len(helps) == 1, f"{name}: {helps}"


def test_vlm_options_are_backend_settings_keys():
    for name in VLM_OPTIONS:
        key = name[2:].replace("-", "_")
        key = "cache" if key == "no_cache" else VLM_OPTION_KEYS.get(key, key)
        assert key in BackendSettings.model_fields, name


@pytest.mark.parametrize("path", sorted(JUDGING_COMMANDS))
def test_every_judging_command_has_every_judge_setting_named_as_its_key(path):
    settings = JUDGING_COMMANDS[path]
    options = _options(COMMANDS[path])
    for field, info in settings.model_fields.items():
        option = options.get(judge_option_name(field))
        assert option is not None, f"{path}: no {judge_option_name(field)}"
        assert option.name == field and option.help.startswith(info.description or "")
    if settings is AskSettings:  # the orders are the command's own: asked both ways
        assert not {"--order", "--on-disagree"} & set(options)


#: Judge options whose default a command sets itself (its help says so), with the reason.
DEFAULTS_DIFFER = {
    ("rubric learn", "max_tokens"): "learning's calls write criteria lists, longer than a verdict (2048)",
}


def test_a_judge_setting_option_means_the_same_on_every_command():
    for field, info in AskSettings.model_fields.items():
        shown = set()
        for path in JUDGING_COMMANDS:
            option = _options(COMMANDS[path])[judge_option_name(field)]
            if (path, field) in DEFAULTS_DIFFER:
                assert option.help.startswith(info.description) and "setting's default" in option.help
                continue
            shown.add((option.help, str(option.default)))
        assert len(shown) == 1, f"{field}: {shown}"


def test_vocabulary_options_list_their_choices():
    for path, name, words in [("judge", "--order", "given"), ("judge", "--evidence", "ocr"),
                              ("eval", "--forward", "preferred_first"), ("serve", "--log-level", "debug"),
                              ("rubric learn", "--format", "mjbench"), ("rubric write", "--backend", "vllm"),
                              ("rubric learn", "--verify-order", "both"), ("rubric validate", "--task", "edit")]:
        with pytest.raises(UsageError) as caught:
            COMMANDS[path].make_context(path, [name, "not-a-word"], resilient_parsing=False)
        message = caught.value.format_message()
        assert name in message and words in message, (path, name)


# ---------------------------------------------------------------------------- the docs' command lines
#: A shell line running arrpo: ``arrpo …``, ``$ arrpo …``, ``VAR=x arrpo …``, ``… $(which arrpo) …``.
_COMMAND_LINE = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*(?:arrpo|.*\$\(which arrpo\)) (.*)$")


def _doc_lines() -> list[tuple[str, str]]:
    """Every ``arrpo …`` line in a fenced block of README.md and docs/*.md: (file:line, the
    arguments). A trailing ``...`` (more options, left out) is dropped before parsing."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = doc.read_text().splitlines()
        fenced = False
        joined, start = "", 0
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if not fenced:
                continue
            if not joined:
                start = number
            joined += line.rstrip().removesuffix("\\") + " "
            if line.rstrip().endswith("\\"):
                continue
            text, joined = joined.strip(), ""
            match = _COMMAND_LINE.match(text)
            if match and " [--" not in text:  # a synopsis ("[--images DIR]") is not a command line
                found.append((f"{doc.name}:{start}", match.group(1)))
    return found


def _help_lines() -> list[tuple[str, str]]:
    """Every ``arrpo …`` example in a command's own help (``One pair:   arrpo judge …``), without a
    trailing ``(then open …)`` remark."""
    found = []
    for path, command in COMMANDS.items():
        for line in (command.help or "").splitlines():
            match = re.match(r"^\s*(?:[\w ]+:\s+)?arrpo (.*?)(?:\s{2,}\(.*)?$", line)
            if match:
                found.append((f"arrpo {path} --help", match.group(1)))
    return found


DOC_LINES = _doc_lines() + _help_lines()


def _parse(args: list[str]) -> None:
    command: Command = typer.main.get_command(app)
    name = "arrpo"
    while True:
        ctx = command.make_context(name, list(args), resilient_parsing=False)
        if getattr(command, "commands", None) is None:
            return
        rest = [*(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])), *ctx.args]
        name, command, args = command.resolve_command(ctx, rest)


def test_the_docs_quote_command_lines():
    assert len(DOC_LINES) > 20


@pytest.mark.parametrize(("where", "line"), DOC_LINES, ids=[where for where, _ in DOC_LINES])
def test_every_command_line_in_the_docs_parses(where, line):
    args = shlex.split(line, comments=True)
    args = [a for a in args if a != "&"]
    while args and args[-1] in ("...", "…"):
        args.pop()
    for stop in ("|", "&&", ";", ">", "2>&1"):
        if stop in args:
            args = args[: args.index(stop)]
    try:
        _parse(args)
    except typer.Exit:
        pass  # --help, --version
    except UsageError as exc:
        pytest.fail(f"{where}: arrpo {line}\n{exc.format_message()}")


# ----------------------------------------------------------------------------- docs/cli.md's table
def command_table() -> str:
    """Every command's options as the Markdown table docs/cli.md shows (VLM and judge options named
    as groups)."""
    vlm, judge, ask = set(VLM_OPTIONS), {judge_option_name(f) for f in JudgeSettings.model_fields}, {
        judge_option_name(f) for f in AskSettings.model_fields}
    rows = ["| command | options |", "|---|---|"]
    for path, command in sorted(COMMANDS.items()):
        names = list(_options(command))
        groups = []
        if vlm <= set(names):
            groups.append("VLM options")
        if judge <= set(names):
            groups.append("all judge settings")
        elif ask <= set(names):
            groups.append("the ask settings")
        own = [n for n in names if not (n in vlm and "VLM options" in groups)
               and not (n in judge and "all judge settings" in groups)
               and not (n in ask and "the ask settings" in groups)]
        rows.append(f"| `arrpo {path}` | {' '.join(f'`{n}`' for n in own)}{'; ' if own and groups else ''}"
                    f"{', '.join(groups)} |")
    return "\n".join(rows)


def test_docs_cli_md_shows_every_command_and_its_options():
    assert command_table() in (ROOT / "docs" / "cli.md").read_text(), \
        "docs/cli.md's table is out of date: python tests/core/test_cli_rules.py prints it"


if __name__ == "__main__":
    print(command_table())
