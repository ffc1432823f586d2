"""``arrpo label``: label seed pairs in the browser; ``arrpo label agreement``: compare annotators."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from arrpo.cli._common import LogLevelOption, console, fail


class _DefaultToStart(TyperGroup):
    """``arrpo label PAIRS ...`` means ``arrpo label start PAIRS ...``; named subcommands stay as they are."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


label_app = typer.Typer(
    cls=_DefaultToStart, no_args_is_help=True,
    help="Label seed pairs in the browser (arrpo label PAIRS --out seeds.jsonl), or compare "
         "annotators (arrpo label agreement FILE FILE...). See docs/annotation.md.",
)

TokenEnv = Annotated[str, typer.Option("--token-env", help="Environment variable holding the page's token (needed off loopback).")]
Host = Annotated[str, typer.Option("--host", help="Address to bind. Anything but loopback needs a token.")]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: a free one).")]


def register(app: typer.Typer) -> None:
    app.add_typer(label_app, name="label")


def read_token(token_env: str) -> str | None:
    return os.environ.get(token_env) or None


def open_socket(host: str, port: int, token: str | None, token_env: str = "ARRPO_ANNOTATE_TOKEN"):
    """Bind the page's socket, or exit 2 with the reason (unsafe host, short token, port in use)."""
    from arrpo.annotate.web import PortInUseError, bind_socket
    from arrpo.server.auth import UnsafeBindError

    try:
        return bind_socket(host, port, token, token_env=token_env)
    except (UnsafeBindError, PortInUseError) as exc:
        raise fail(str(exc)) from None


def announce(what: str, host: str, sock, token: str | None) -> None:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + ("?token=<your token>" if token else "")
    console.print(f"{what} on {url}  (Ctrl+C to stop)", highlight=False, soft_wrap=True)


def require_web() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise fail("the annotation pages need the serve extra: pip install 'arrpo[serve]'") from None


@label_app.command("start")
def start_command(
    pairs: Annotated[str, typer.Argument(help="Pair file (arrpo judge --pairs / arrpo eval JSONL, CSV), KIND:PATH dataset spec, or a folder of images per prompt.")],
    out: Annotated[Path, typer.Option("--out", help="Seed file to write (project JSONL for arrpo rubric learn); its log is OUT_STEM.log.jsonl.")] = ...,  # type: ignore[assignment]
    annotator: Annotated[Optional[str], typer.Option("--annotator", help="Your name; with it the labels go to OUT_STEM.NAME.jsonl.")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Root for relative image paths (default: the pair file's folder).")] = None,
    allow_ties: Annotated[bool, typer.Option("--allow-ties", help="Allow the 't' (tie) answer.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of this command's randomness: the left/right coin (and the folder pair draw).")] = 0,
    pairs_per_prompt: Annotated[Optional[int], typer.Option("--pairs-per-prompt", min=1, help="Folder input: draw at most N pairs per prompt folder.")] = None,
    host: Host = "127.0.0.1",
    port: Port = 8765,
    token_env: TokenEnv = "ARRPO_ANNOTATE_TOKEN",
    log_level: LogLevelOption = "warning",
) -> None:
    """Serve a page that shows one pair at a time; every answer is saved at once (resumable).

    arrpo label pairs.jsonl --out seeds.jsonl            (then open http://127.0.0.1:8765/)
    """
    require_web()
    from arrpo.annotate.items import LabelInputError, read_items
    from arrpo.annotate.label_app import create_label_app
    from arrpo.annotate.labels import LabelBook, log_path_for
    from arrpo.annotate.web import serve

    if annotator is not None:
        name = annotator.strip()
        if not name or any(c in name for c in "/\\\0") or name.startswith("."):
            raise fail(f"--annotator must be a plain name (got {annotator!r})")
        out = out.with_name(f"{out.stem}.{name}{out.suffix or '.jsonl'}")
    token = read_token(token_env)
    sock = open_socket(host, port, token, token_env)
    try:
        items = read_items(pairs, images=images, seed=seed, pairs_per_prompt=pairs_per_prompt)
        book = LabelBook(items, out, annotator=annotator or "", seed=seed, allow_ties=allow_ties)
    except LabelInputError as exc:
        sock.close()
        raise fail(str(exc)) from None
    except OSError as exc:
        sock.close()
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
    progress = book.progress()
    console.print(f"{progress['total']} pairs; {progress['labelled']} labelled and {progress['skipped']} skipped "
                  f"already. Labels: {out} (log: {log_path_for(out)})", highlight=False, soft_wrap=True)
    announce("arrpo label", host, sock, token)
    try:
        serve(create_label_app(book, host=host, token=token), sock, log_level=log_level)
    finally:
        book.close()


@label_app.command("agreement")
def agreement_command(
    files: Annotated[list[Path], typer.Argument(help="Label files of two or more annotators (seed files or their logs).")],
) -> None:
    """Inter-annotator agreement on the pairs labelled by both: raw agreement and Cohen's kappa.

    arrpo label agreement seeds.alice.jsonl seeds.bob.jsonl
    """
    from itertools import combinations

    from rich.console import Console
    from rich.table import Table

    from arrpo.annotate.labels import read_label_records, side_answers
    from arrpo.annotate.stats import agreement, position_bias

    if len(files) < 2:
        raise fail("give two or more label files")
    records, labels = {}, {}
    for path in files:
        if not path.is_file():
            raise fail(f"{path}: no such file")
        records[path] = read_label_records(path)
        labels[path] = {i: str(r["label"]) for i, r in records[path].items()}
        if not labels[path]:
            raise fail(f"{path}: holds no labels")
    out = Console(width=max(120, Console().width))
    table = Table(title="inter-annotator agreement (pairs labelled by both)")
    for column in ("first", "second", "shared pairs", "agree", "raw agreement", "Cohen's κ"):
        table.add_column(column, justify="right" if column not in ("first", "second") else "left", overflow="fold")
    for first, second in combinations(files, 2):
        result = agreement(labels[first], labels[second])
        raw = f"{result.raw:.1%}" if result.raw is not None else "–"
        kappa = f"{result.kappa:.3f}" if result.kappa is not None else "–"
        table.add_row(str(first), str(second), str(result.shared), str(result.agree), raw, kappa)
    out.print(table)
    sides = Table(title="position bias per annotator (decisive labels)")
    for column in ("file", "labels", "chose left", "left rate", "binomial p"):
        sides.add_column(column, justify="left" if column == "file" else "right", overflow="fold")
    for path in files:
        bias = position_bias(side_answers(records[path]))
        rate = f"{bias.left_rate:.1%}" if bias.left_rate is not None else "–"
        sides.add_row(str(path), str(len(labels[path])), f"{bias.left} of {bias.decisive}", rate, f"{bias.p_value:.3f}")
    out.print(sides)
