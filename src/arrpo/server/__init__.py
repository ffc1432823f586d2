"""The arrpo reward service (needs the ``serve`` extra: FastAPI and uvicorn).

``create_app(backend, ServiceConfig(...))`` builds the application; ``run_server`` serves it;
``ServerThread`` serves it in the background (tests, benchmarks, notebooks). The wire protocol is
in :mod:`arrpo.server.protocol`, which imports no web framework.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerThread", "ServiceConfig", "UnsafeBindError", "create_app", "run_server"]

_EXPORTS = {
    "ServerThread": "arrpo.server.runner",
    "run_server": "arrpo.server.runner",
    "ServiceConfig": "arrpo.server.config",
    "UnsafeBindError": "arrpo.server.auth",
    "create_app": "arrpo.server.app",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'arrpo.server' has no attribute {name!r}")
