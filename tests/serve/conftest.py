"""Fixtures for the reward-service tests: the real service (FastAPI app under uvicorn) on
127.0.0.1 with a random port, in front of a scripted VLM."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from arrpo.server import ServerThread, ServiceConfig, create_app
from arrpo.testing.scripted_server import Handler, ScriptedVLMServer
from arrpo.vlm import build_backend
from tests.serve.helpers import brighter_wins


class Service:
    """A running reward service plus the scripted VLM behind it."""

    def __init__(self, thread: ServerThread, vlm: ScriptedVLMServer, app):
        self.thread = thread
        self.vlm = vlm
        self.app = app
        self.url = thread.url

    @property
    def state(self):
        return self.app.state.service


@pytest.fixture
def start_service(scripted_server) -> Iterator[Callable[..., Service]]:
    """``start_service(handler=brighter_wins, concurrency=16, config=None, writer=None, ...)``."""
    running: list[ServerThread] = []

    def start(
        handler: Handler = brighter_wins,
        *,
        concurrency: int = 16,
        config: ServiceConfig | None = None,
        writer=None,
        timeout: float = 30.0,
        retries: int = 0,
        host: str = "127.0.0.1",
        token: str | None = None,
        access_log: bool = False,
        log_level: str = "warning",
    ) -> Service:
        vlm = scripted_server(handler)
        backend = build_backend(
            vlm.base_url, "scripted", max_concurrency=concurrency, max_retries=retries,
            cache_path=False, timeout=timeout, retry_base_delay=0.01,
        )
        app = create_app(backend, config or ServiceConfig(), prompt_rubric_writer=writer)
        thread = ServerThread(app, host=host, token=token, access_log=access_log, log_level=log_level).start()
        running.append(thread)
        return Service(thread, vlm, app)

    yield start
    for thread in running:
        thread.stop(timeout=10)


@pytest.fixture
def service(start_service) -> Service:
    return start_service()
