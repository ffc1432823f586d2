"""The ``arrpo review`` web app over a :class:`RunView` and an :class:`ExemplarBook`.

Endpoints: ``GET /`` the page, ``GET /api/run`` (judges, rows, marked ids), ``POST /api/exemplars``
``{"n", "preferred": "A"|"B", "rationale"}``, ``GET /api/image/{n}/{slot}`` (slot ``a``, ``b`` or
``source``), ``GET /health``.
"""

from __future__ import annotations

import threading
from typing import Any

from arrpo.annotate.review import ExemplarBook, ExemplarError, RunView
from arrpo.annotate.web import add_basic_routes, image_response, install_guard, page_html
from arrpo.server.errors import error_response


def create_review_app(view: RunView, book: ExemplarBook, *, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The FastAPI app (needs the ``serve`` extra)."""
    from fastapi import Body, FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="arrpo review", docs_url=None, redoc_url=None, openapi_url=None)
    install_guard(app, host=host, token=token)
    add_basic_routes(app)
    lock = threading.Lock()
    page = page_html("review.html")
    rows = view.rows()

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/run")
    def get_run() -> dict[str, Any]:
        with lock:
            marked = sorted(book.marked)
        return {"run": str(view.run_dir), "judges": view.judges, "pairs": rows, "marked": marked,
                "out": str(book.path)}

    @app.post("/api/exemplars")
    def post_exemplar(body: Any = Body(...)) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("n"), int) or isinstance(body.get("n"), bool):
            return error_response(422, "bad_input", "expected {\"n\": pair number, \"preferred\", \"rationale\"}")
        with lock:
            try:
                record = book.mark(body["n"], str(body.get("preferred")), body.get("rationale", ""))
            except ExemplarError as exc:
                return error_response(409, "conflict", str(exc))
            return {"marked": record["id"], "count": len(book.marked)}

    @app.get("/api/image/{number}/{slot}")
    def get_image(number: int, slot: str) -> Any:
        return image_response(view.image(number, slot))

    return app
