"""Which rubric conditions a request: the task rubric from a file, a prompt-level rubric, or none.

Prompt-level rubrics are written on demand by a pluggable *writer* (an async callable
``(prompt, task, source) -> Rubric``; ``source`` is the edit's source image or ``None``), generated
once per (task, prompt, source) and kept in a bounded LRU cache.
Concurrent requests for the same prompt share one generation. Without a writer, asking for a
prompt rubric is answered 501 with a message saying how to enable it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Optional

from arrpo.images import ImageData
from arrpo.rubric import Rubric
from arrpo.server.errors import ApiError
from arrpo.server.protocol import RubricInfo, RubricMode

PromptRubricWriter = Callable[[str, str, Optional[ImageData]], Awaitable[Rubric]]


def rubric_sha256(rubric: Rubric) -> str:
    return hashlib.sha256(rubric.render().encode("utf-8")).hexdigest()


class RubricProvider:
    """Resolve the rubric a request asks for.

    Args:
        task_rubrics: rubric per task (``t2i``/``edit``) loaded at start-up.
        writer: prompt-level rubric writer, or ``None`` when the server has none.
        cache_size: prompt rubrics kept in memory.
        on_cache: called with ``"hit"`` or ``"miss"`` for metrics.
    """

    def __init__(
        self,
        task_rubrics: dict[str, Rubric],
        writer: PromptRubricWriter | None = None,
        cache_size: int = 1024,
        on_cache: Callable[[str], None] | None = None,
    ):
        self.task_rubrics = dict(task_rubrics)
        self.writer = writer
        self.cache_size = max(1, cache_size)
        self._on_cache = on_cache or (lambda _: None)
        self._cache: OrderedDict[tuple[str, str, str], Rubric] = OrderedDict()
        self._pending: dict[tuple[str, str, str], asyncio.Future[Rubric]] = {}
        self.generated = 0

    async def resolve(
        self, mode: RubricMode, task: str, prompt: str, inline: Rubric | None = None,
        source: ImageData | None = None,
    ) -> tuple[Rubric | None, RubricInfo]:
        if inline is not None:
            return inline, RubricInfo(mode="inline", sha256=rubric_sha256(inline))
        if mode == "none" or (mode == "auto" and task not in self.task_rubrics):
            return None, RubricInfo(mode="none")
        if mode in ("auto", "task"):
            rubric = self.task_rubrics.get(task)
            if rubric is None:
                raise ApiError(
                    501, "no_task_rubric",
                    f"this server has no rubric for task '{task}'; start it with "
                    f"--rubric {task}=FILE, or ask for rubric 'none', 'prompt' or an inline rubric",
                )
            return rubric, RubricInfo(mode="task", sha256=rubric_sha256(rubric))
        rubric, cached = await self.prompt_rubric(prompt, task, source)
        return rubric, RubricInfo(mode="prompt", sha256=rubric_sha256(rubric), cached=cached)

    async def prompt_rubric(self, prompt: str, task: str, source: ImageData | None = None) -> tuple[Rubric, bool]:
        """The prompt-level rubric (from the cache, a generation in progress, or a new one)."""
        if self.writer is None:
            raise ApiError(
                501, "prompt_rubrics_unavailable",
                "prompt-level rubrics are not enabled on this server (start it with "
                "--prompt-rubrics; needs arrpo.rubrics); use rubric 'task', 'none' or an inline rubric",
            )
        key = (task, prompt, source.sha256 if source is not None else "")
        if key in self._cache:
            self._cache.move_to_end(key)
            self._on_cache("hit")
            return self._cache[key], True
        pending = self._pending.get(key)
        if pending is None:
            self._on_cache("miss")
            pending = asyncio.ensure_future(self._generate(key, source))
            self._pending[key] = pending
        else:
            self._on_cache("hit")
        try:
            # shield: a client that disconnects must not cancel a generation others wait for
            return await asyncio.shield(pending), False
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(
                502, "rubric_generation_failed", f"writing a rubric for this prompt failed: {exc}"
            ) from exc

    async def _generate(self, key: tuple[str, str, str], source: ImageData | None) -> Rubric:
        task, prompt, _ = key
        try:
            assert self.writer is not None
            rubric = await self.writer(prompt, task, source)
            if not isinstance(rubric, Rubric):
                raise TypeError(f"the rubric writer returned {type(rubric).__name__}, not a Rubric")
            self.generated += 1
            self._cache[key] = rubric
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return rubric
        finally:
            self._pending.pop(key, None)


def default_prompt_writer(backend, **options) -> PromptRubricWriter:
    """The zero-shot prompt-rubric writer of :mod:`arrpo.rubrics`, bound to ``backend``.

    ``options`` go to :class:`~arrpo.rubrics.RubricWriter` (``max_themes``, ``max_tips``, ...).
    The writer keeps no cache of its own here: the provider's LRU is the only one.
    """
    from arrpo.rubrics.write import RubricWriter

    async def write(prompt: str, task: str, source: ImageData | None) -> Rubric:
        writer = RubricWriter(backend, **options)  # fresh: no unbounded memory in a long-lived server
        return await writer.write_prompt(task, prompt, source)  # type: ignore[arg-type]

    return write
