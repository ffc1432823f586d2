"""Which rubric conditions a request: the task rubric from a file, a prompt-level rubric, or none.

Prompt-level rubrics are written on demand by a pluggable writer (any
:data:`~arrpo.rubrics.write.PromptRubricWriter`, ``(task, prompt, source) -> Rubric``) and kept by
the project's one prompt-rubric cache, :class:`~arrpo.rubrics.write.PromptRubrics` (bounded LRU,
concurrent requests for one prompt share one write). This module keeps only the service's policy:
without a writer a prompt rubric is answered 501 saying how to enable it; a write that fails, 502.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from arrpo.images import ImageData
from arrpo.rubric import Rubric
from arrpo.rubrics.write import PromptRubrics, PromptRubricWriter, RubricWriteError
from arrpo.server.errors import ApiError
from arrpo.server.protocol import RubricInfo, RubricMode


def rubric_sha256(rubric: Rubric) -> str:
    return hashlib.sha256(rubric.render().encode("utf-8")).hexdigest()


class RubricSource:
    """The rubric a request is judged with, under the service's policy.

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
        self.prompt_rubrics = PromptRubrics("service", max_size=max(1, cache_size), on_lookup=on_cache)

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
        """The prompt-level rubric (kept, being written, or written now) and whether it was kept."""
        writer = self.writer
        if writer is None:
            raise ApiError(
                501, "prompt_rubrics_unavailable",
                "prompt-level rubrics are not enabled on this server (start it with "
                "--prompt-rubrics; needs arrpo.rubrics); use rubric 'task', 'none' or an inline rubric",
            )
        try:
            return await self.prompt_rubrics.get(task, prompt, source, lambda: writer(task, prompt, source))  # type: ignore[arg-type]
        except RubricWriteError as exc:
            raise ApiError(502, "rubric_generation_failed", f"writing a rubric for this prompt failed: {exc}") from exc


def default_prompt_writer(backend, **options) -> PromptRubricWriter:
    """The zero-shot prompt-rubric writer of :mod:`arrpo.rubrics`, bound to ``backend``.

    ``options`` go to :class:`~arrpo.rubrics.RubricWriter` (``max_themes``, ``max_tips``, ...).
    The writer keeps no rubric itself: the service's :class:`RubricSource` keeps them, bounded.
    """
    from arrpo.rubrics.write import RubricWriter

    return RubricWriter(backend, cache_size=0, **options).write_prompt
