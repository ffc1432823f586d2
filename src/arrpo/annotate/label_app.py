"""The ``arrpo label`` web app: one pair at a time, answers straight into a :class:`LabelBook`.

Endpoints (JSON unless noted): ``GET /`` the page, ``GET /api/state``, ``POST /api/answer``
``{"id", "choice": "left"|"right"|"tie"|"skip", "seconds"}``, ``POST /api/undo``,
``GET /api/image/{n}/{slot}`` (slot ``left``, ``right`` or ``source``: the page never learns which
side is the input's A), ``GET /health``.
"""

from __future__ import annotations

import threading
from typing import Any

from arrpo.annotate.labels import LabelBook, LabelStateError
from arrpo.annotate.web import add_basic_routes, image_response, install_guard, page_html
from arrpo.server.errors import error_response

SLOTS = ("left", "right", "source")


def state_of(book: LabelBook, *, undone: str | None = None) -> dict[str, Any]:
    """What the page shows: the current pair (without its A/B sides), progress and statistics."""
    current = book.current()
    bias = book.bias()
    both, same = book.agreement_with_input()
    seconds = book.seconds()
    state: dict[str, Any] = {
        "annotator": book.annotator,
        "allow_ties": book.allow_ties,
        "progress": book.progress(),
        "can_undo": bool(book.state.history),
        "undone": undone,
        "last_seconds": seconds[-1] if seconds else None,
        "median_seconds": book.median_seconds(),
        "bias": {"decisive": bias.decisive, "left": bias.left, "left_rate": bias.left_rate,
                 "p_value": bias.p_value, "acc_left": bias.acc_left, "acc_right": bias.acc_right,
                 "delta": bias.delta},
        "input_agreement": {"pairs": both, "same": same},
        "out": str(book.out),
        "current": None,
    }
    if current is not None:
        number, item = current
        state["current"] = {"n": number, "id": item.id, "task": item.task, "prompt": item.prompt,
                            "has_source": item.source is not None}
    return state


def create_label_app(book: LabelBook, *, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The FastAPI app over ``book`` (needs the ``serve`` extra)."""
    from fastapi import Body, FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="arrpo label", docs_url=None, redoc_url=None, openapi_url=None)
    install_guard(app, host=host, token=token)
    add_basic_routes(app)
    lock = threading.Lock()  # one answer at a time: the log order is the answer order
    page = page_html("label.html")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/state")
    def get_state() -> dict[str, Any]:
        with lock:
            return state_of(book)

    @app.post("/api/answer")
    def post_answer(body: Any = Body(...)) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            return error_response(422, "bad_input", "expected {\"id\": ..., \"choice\": ...}")
        with lock:
            try:
                book.answer(body["id"], str(body.get("choice")), body.get("seconds"))
            except LabelStateError as exc:
                return error_response(409, "conflict", str(exc), state=state_of(book))
            return state_of(book)

    @app.post("/api/undo")
    def post_undo(body: Any = Body(None)) -> dict[str, Any]:
        with lock:
            undone = book.undo()
            return state_of(book, undone=undone)

    @app.get("/api/image/{number}/{slot}")
    def get_image(number: int, slot: str) -> Any:
        if slot not in SLOTS or not 0 <= number < len(book.items):
            return error_response(404, "not_found", "no such image")
        item = book.items[number]
        if slot == "source":
            return image_response(item.source)
        left = book.left_of(item)
        side = left if slot == "left" else ("B" if left == "A" else "A")
        return image_response(item.image_a if side == "A" else item.image_b)

    return app
