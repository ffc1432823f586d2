"""``arrpo review``: browse an ``arrpo eval`` run and mark guide exemplars in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from arrpo.cli._common import LogLevelOption, console, fail
from arrpo.cli.label import Host, Port, TokenEnv, announce, open_socket, read_token, require_web


def register(app: typer.Typer) -> None:
    app.command("review")(review_command)


def review_command(
    run_dir: Annotated[Path, typer.Argument(help="An arrpo eval run directory (only read).")],
    out: Annotated[Path, typer.Option("--out", help="Guide exemplars file to append to (for arrpo rubric learn --guide).")] = Path("exemplars.jsonl"),
    images: Annotated[Optional[Path], typer.Option("--images", help="Image root, if the run's images moved since it ran.")] = None,
    host: Host = "127.0.0.1",
    port: Port = 8766,
    token_env: TokenEnv = "ARRPO_ANNOTATE_TOKEN",
    log_level: LogLevelOption = "warning",
) -> None:
    """Serve a page listing the run's pairs with every judge's answers; mark exemplars with a rationale.

    arrpo review runs/mj --out exemplars.jsonl           (then open http://127.0.0.1:8766/)
    """
    require_web()
    from arrpo.annotate.review import ExemplarBook, ReviewInputError, RunView
    from arrpo.annotate.review_app import create_review_app
    from arrpo.annotate.web import serve

    try:
        view = RunView.load(run_dir, images=images)
        book = ExemplarBook(out, view)
    except ReviewInputError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
    token = read_token(token_env)
    try:
        sock = open_socket(host, port, token, token_env)
    except typer.Exit:
        book.close()
        raise
    console.print(f"{len(view.pairs)} pairs, judges: {', '.join(view.judges) or 'none'}; "
                  f"{len(book.marked)} exemplars already in {out}", highlight=False, soft_wrap=True)
    announce("arrpo review", host, sock, token)
    try:
        serve(create_review_app(view, book, host=host, token=token), sock, log_level=log_level)
    finally:
        book.close()
