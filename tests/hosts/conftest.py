"""The running reward service fixtures of ``tests/serve`` (uvicorn on 127.0.0.1, scripted VLM)."""

from tests.serve.conftest import service, start_service  # noqa: F401 - pytest fixtures
