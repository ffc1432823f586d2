"""One progress bar for every long command: a count of finished items plus named outcome counters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class CountingProgress:
    """A rich progress bar that shows ``key=count`` for each outcome key as items finish.

    Args:
        total: items to finish.
        label: text before the bar (``judging``, ``eval``, ``learning``).
        keys: outcome counters, in display order (all start at 0).
        hide_zero: keys not shown while their count is 0.
        console: rich console to draw on (default: rich's own).
    """

    def __init__(self, total: int, label: str, keys: Iterable[str], *, hide_zero: Iterable[str] = (),
                 console: Any = None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.counts = dict.fromkeys(keys, 0)
        self._hide_zero = set(hide_zero)
        self._progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"), console=console, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, status="")

    @property
    def console(self) -> Any:
        return self._progress.console

    def advance(self, *outcomes: str, steps: int = 1) -> None:
        """Count one finished item (``steps`` items) with the given outcome keys."""
        for outcome in outcomes:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
        status = " ".join(f"{k}={v}" for k, v in self.counts.items() if v or k not in self._hide_zero)
        self._progress.update(self._task, advance=steps, status=status)

    def close(self) -> None:
        self._progress.stop()

    def __enter__(self) -> CountingProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
