"""No silent dead step: one monitor of how much of each training step carries no signal.

A *step* is what the adapter hands in at once: Flow-GRPO's sampling epoch (all ranks, closed
when no group is left open), or, for hosts that call once per group (Flow-Factory, DanceGRPO),
the groups observed since the last step until at least ``step_samples`` samples are in. A step is
*dead* when more than ``max_invalid_share`` of its samples carry no training signal (masked for
any reason: invalid verdicts, failed requests, ties), or all of them do. Every dead step logs a
WARNING with the share and the most common cause; ``max_dead_steps`` dead steps in a row raise
:class:`DeadRunError`, as ``arrpo judge --max-invalid-share`` fails a batch.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arrpo.errors import RunFailedError

log = logging.getLogger("arrpo.integrations")

#: Monitor options an adapter accepts (with their defaults).
MONITOR_DEFAULTS = {"max_invalid_share": 0.5, "max_dead_steps": 3, "step_samples": 64}


class DeadRunError(RunFailedError):
    """Training steps in a row carried (almost) no signal: the judge or the service is broken."""


def cause_of(text: str, limit: int = 120) -> str:
    """A cause as counted: whitespace folded, cut to ``limit`` characters."""
    return " ".join(str(text).split())[:limit] or "unknown"


def masked_causes(response: Any) -> Counter:
    """Why the masked samples of a judged group carry no signal, counted per sample: the commonest
    tie or invalid verdict of its pairs, else its notes. ``response``: a ``/v1/group_rewards``
    answer (anything with ``mask``, ``pairs`` of ``verdict`` and ``notes``), as the service, the
    client and every adapter see it."""
    masked = sum(not m for m in response.mask)
    if not masked:
        return Counter()
    reasons = Counter(
        "tie" if p.verdict.winner == "tie" else f"invalid verdict: {p.verdict.invalid_reason or '?'}"
        for p in response.pairs if p.verdict.winner not in ("A", "B")
    )
    cause = reasons.most_common(1)[0][0] if reasons else "; ".join(response.notes) or "masked"
    return Counter({cause_of(cause): masked})


@dataclass
class _Tally:
    samples: int = 0
    masked: int = 0
    causes: Counter = field(default_factory=Counter)


class StepMonitor:
    """Counts masked samples per step; warns on every dead step; fails a run of them.

    Args:
        max_invalid_share: a step with more than this share of masked samples is dead (0 to 1).
        max_dead_steps: dead steps in a row that fail the run (0: never fail, only warn).
        step_samples: for per-group hosts, the samples that make a step.
        what: how the host names the unit, for the messages.
        speak: whether this process logs (one rank of several that see the same steps).
    """

    def __init__(self, max_invalid_share: float = 0.5, max_dead_steps: int = 3, step_samples: int = 64,
                 what: str = "step", speak: bool = True):
        if not 0.0 <= max_invalid_share <= 1.0:
            raise ValueError(f"max_invalid_share must be between 0 and 1, not {max_invalid_share!r}")
        for name, value in (("max_dead_steps", max_dead_steps), ("step_samples", step_samples)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number of at least 0, not {value!r}")
        self.max_invalid_share = max_invalid_share
        self.max_dead_steps = max_dead_steps
        self.step_samples = max(1, step_samples)
        self.what = what
        self.speak = speak
        self.dead_in_a_row = 0
        self.steps = 0
        self.dead_steps = 0
        self._tally = _Tally()
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: dict, **fixed) -> StepMonitor:
        """Pop the monitor's options out of ``options`` (an adapter's settings)."""
        values = {name: options.pop(name, default) for name, default in MONITOR_DEFAULTS.items()}
        return cls(**{**values, **fixed})

    def observe(self, samples: int, masked: int, causes: Mapping[str, int]) -> None:
        """Add a group (or several); ends the step once ``step_samples`` samples are in."""
        with self._lock:
            self._add(samples, masked, causes)
            full = self._tally.samples >= self.step_samples
        if full:
            self.end_step()

    def step(self, samples: int, masked: int, causes: Mapping[str, int]) -> None:
        """One whole step at once."""
        with self._lock:
            self._add(samples, masked, causes)
        self.end_step()

    def end_step(self) -> None:
        """Judge the step observed so far (nothing when it is empty)."""
        with self._lock:
            tally, self._tally = self._tally, _Tally()
            if not tally.samples:
                return
            self.steps += 1
            share = tally.masked / tally.samples
            dead = tally.masked == tally.samples or share > self.max_invalid_share
            self.dead_in_a_row = self.dead_in_a_row + 1 if dead else 0
            self.dead_steps += int(dead)
            in_a_row = self.dead_in_a_row
        if not dead:
            return
        cause, count = tally.causes.most_common(1)[0] if tally.causes else ("unknown", tally.masked)
        summary = (
            f"{tally.masked} of {tally.samples} samples ({share:.0%}) carry no training signal; most common "
            f"cause ({count}x): {cause}"
        )
        if self.max_dead_steps and in_a_row >= self.max_dead_steps:
            raise DeadRunError(
                f"arrpo reward: {in_a_row} {self.what}s in a row with no training signal (over "
                f"max_invalid_share {self.max_invalid_share:.0%}); last: {summary}. Check the judge "
                "(`arrpo judge` on a few pairs) and the service's log; max_dead_steps sets how many are allowed"
            )
        if self.speak:
            log.warning("arrpo reward: dead %s (%d in a row): %s", self.what, in_a_row, summary)

    def _add(self, samples: int, masked: int, causes: Mapping[str, int]) -> None:
        self._tally.samples += samples
        self._tally.masked += masked
        self._tally.causes.update(causes)
