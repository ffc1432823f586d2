"""Running the service with uvicorn: in the foreground (``arrpo serve``) or in a background thread.

Shutdown is graceful: on SIGINT/SIGTERM (or :meth:`ServerThread.stop`) uvicorn stops accepting
connections, lets in-flight requests finish (up to ``graceful_timeout`` seconds), then runs the
application's shutdown, which closes the backend.
"""

from __future__ import annotations

import threading
import time

from arrpo.server.auth import check_bind


def _config(app, host: str, port: int, *, graceful_timeout: float, log_level: str, access_log: bool):
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout, lifespan="on", server_header=False,
        limit_concurrency=None, timeout_keep_alive=30,
    )


def run_server(
    app, host: str, port: int, *, token: str | None, graceful_timeout: float = 60.0,
    log_level: str = "info", access_log: bool = True,
) -> None:
    """Serve ``app`` until interrupted. Refuses a non-loopback ``host`` without a ``token``."""
    import uvicorn

    check_bind(host, token)
    config = _config(app, host, port, graceful_timeout=graceful_timeout, log_level=log_level, access_log=access_log)
    uvicorn.Server(config).run()


class ServerThread:
    """Serve an app on ``host`` (loopback by default) and a free port in a daemon thread.

    ``with ServerThread(app) as server: httpx.get(server.url + "/health")``.
    """

    def __init__(
        self, app, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
        graceful_timeout: float = 30.0, log_level: str = "warning", access_log: bool = False,
    ):
        import uvicorn

        check_bind(host, token)
        # uvicorn binds the port itself (port 0: a free one, read back after start-up); its
        # accepted sockets then get TCP_NODELAY (a pre-bound socket with proto 0 does not, which
        # costs ~40 ms a request in delayed ACKs).
        self.host, self.port = host, port
        config = _config(app, host, port, graceful_timeout=graceful_timeout,
                         log_level=log_level, access_log=access_log)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="arrpo-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self.server.run()

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the reward service did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: in-flight requests finish first (like SIGTERM)."""
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
