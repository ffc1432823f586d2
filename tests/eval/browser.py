"""Headless Chromium for the page tests, driven by Playwright (the system Chromium, never a download).

``Browser`` keeps the small interface the report test uses (open a file, evaluate JavaScript,
collect console errors, take a screenshot) and exposes the Playwright ``page`` for the annotation
tests. :func:`require_browser` skips a test, with the reason, when Playwright or Chromium is absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}


def find_chromium() -> str | None:
    """The system Chromium, or None when it or the ``playwright`` package is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def require_browser() -> str:
    """The Chromium binary, or skip the calling test with the reason."""
    import pytest

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install 'arrpo[dev]')")
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return binary


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, binary: str, viewport: dict[str, int] | None = None):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(executable_path=binary, headless=True, args=CHROMIUM_ARGS)
        except Exception:
            self._playwright.stop()
            raise
        self.page = self.browser.new_page(viewport=viewport or VIEWPORT)
        self.page.set_default_timeout(20_000)
        self.messages: list[str] = []
        self.page.on("console", lambda m: self.messages.append(f"console.{m.type}: {m.text}")
                     if m.type in ("error", "assert") else None)
        self.page.on("pageerror", lambda e: self.messages.append(f"exception: {e}"))

    def open(self, target: Path | str) -> None:
        """Load a file path or a URL and wait for its load event."""
        url = target.resolve().as_uri() if isinstance(target, Path) else target
        self.page.goto(url, wait_until="load")

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions seen so far."""
        return list(self.messages)

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.browser.close()
        finally:
            self._playwright.stop()
