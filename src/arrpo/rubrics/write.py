"""Zero-shot rubrics: a task-level rubric with no data, or a rubric for one prompt; and the one
cache of prompt-level rubrics.

:class:`PromptRubrics` is where every prompt-level rubric of the project is kept (the writer's,
the reward service's, an evaluation run's): one key function (:func:`prompt_rubric_key`: who writes
it, the task, the prompt and the source image's content), a bounded in-memory LRU, an optional
folder of ``<key>.json`` files, and concurrent requests for one key sharing one write, so a
training run asks once per prompt. Its users keep only their policy on a failure (the service
answers 502, an evaluation records the pair as invalid, training masks the group).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Optional

from arrpo._sync import run_sync
from arrpo.errors import ArrpoError
from arrpo.images import ImageData
from arrpo.prompts import render, template_sha256
from arrpo.rubric import Provenance, Rubric
from arrpo.rubrics.ask import THEMES_SCHEMA, THEMES_SHAPE, ask_json, model_name
from arrpo.rubrics.parsing import parse_themes
from arrpo.schema import Task, task_source_problem
from arrpo.text import exception_text
from arrpo.vlm.base import Message, VLMBackend, options_tag

#: Writes the rubric for one prompt: ``(task, prompt, source) -> Rubric`` (``source``: the edit's
#: source image, else ``None``). :meth:`RubricWriter.write_prompt` is one; the reward service
#: takes any.
PromptRubricWriter = Callable[[Task, str, Optional[ImageData]], Awaitable[Rubric]]


class RubricWriteError(ArrpoError, RuntimeError, kind="backend"):
    """No usable rubric was written (the model's replies after the repair retries, or the writer failed)."""


def prompt_rubric_key(writer: str, task: Task, prompt: str, source: ImageData | None = None) -> str:
    """The key of a prompt-level rubric: who writes it (``writer``: the model and the writer's
    options), the task, the prompt and the content of the source image. A rubric written by
    another model, with other options or for another source is another rubric."""
    blob = "\x00".join([writer, task, prompt, source.sha256 if source is not None else ""])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class PromptRubrics:
    """Prompt-level rubrics, each written once per key.

    Args:
        writer: who writes them, part of every key (see :func:`prompt_rubric_key`).
        max_size: rubrics kept in memory; the least recently used goes first (``0``: none).
        cache_dir: folder keeping them as ``<key>.json`` across runs (``None``: memory only).
        on_lookup: called with ``"hit"`` or ``"miss"`` per lookup (joining a write in progress is a hit).

    A write that fails is not kept: the next lookup of the key writes again.
    """

    def __init__(self, writer: str, *, max_size: int = 1024, cache_dir: str | Path | None = None,
                 on_lookup: Callable[[str], None] | None = None):
        self.writer = writer
        self.max_size = max(0, max_size)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._on_lookup = on_lookup or (lambda _: None)
        self._memory: OrderedDict[str, Rubric] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Rubric]] = {}
        self.written = 0  # rubrics actually written (not from memory or the folder)

    def key(self, task: Task, prompt: str, source: ImageData | None = None) -> str:
        return prompt_rubric_key(self.writer, task, prompt, source)

    async def get(
        self, task: Task, prompt: str, source: ImageData | None, write: Callable[[], Awaitable[Rubric]]
    ) -> tuple[Rubric, bool]:
        """``(rubric, kept)``: the kept rubric of the key, or the one ``write()`` gives (a write
        already in progress for the key is joined). Raises :class:`RubricWriteError` when the
        write fails in any way."""
        key = self.key(task, prompt, source)
        kept = self._recall(key)
        if kept is not None:
            self._on_lookup("hit")
            return kept, True
        pending = self._pending.get(key)
        if pending is None:
            self._on_lookup("miss")
            pending = asyncio.ensure_future(self._write(key, write))
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved, even if nobody waits
            self._pending[key] = pending
        else:
            self._on_lookup("hit")
        # shield: a caller that goes away must not cancel a write others wait for
        return await asyncio.shield(pending), False

    async def _write(self, key: str, write: Callable[[], Awaitable[Rubric]]) -> Rubric:
        try:
            try:
                rubric = await write()
            except RubricWriteError:
                raise
            except Exception as exc:  # the one guard where a pluggable writer enters (service, eval, training)
                raise RubricWriteError(f"the rubric writer failed: {exception_text(exc)}") from exc
            if not isinstance(rubric, Rubric):
                raise RubricWriteError(f"the rubric writer returned {type(rubric).__name__}, not a Rubric")
            self.written += 1
            self._remember(key, rubric)
            if self.cache_dir is not None:
                rubric.save(self.cache_dir / f"{key}.json")
            return rubric
        finally:
            self._pending.pop(key, None)

    def _recall(self, key: str) -> Rubric | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.json"
        if not path.is_file():
            return None
        try:
            rubric = Rubric.load(path)
        except ValueError:
            return None  # a damaged file is written again
        self._remember(key, rubric)
        return rubric

    def _remember(self, key: str, rubric: Rubric) -> None:
        if not self.max_size:
            return
        self._memory[key] = rubric
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_size:
            self._memory.popitem(last=False)


class RubricWriter:
    """Write Theme-Tips rubrics zero-shot.

    Args:
        backend: the VLM (any :class:`~arrpo.vlm.base.VLMBackend`).
        max_themes, max_tips: size limits of the rubric.
        cache_dir: folder for prompt-level rubrics (``<key>.json``); ``None``: memory only.
        cache_size: prompt-level rubrics kept in memory (``0``: none, e.g. when the caller keeps
            its own :class:`PromptRubrics`).
        retries: how often to ask again, quoting the problem, after an unusable reply.
    """

    def __init__(
        self,
        backend: VLMBackend,
        *,
        max_themes: int = 10,
        max_tips: int = 4,
        cache_dir: str | Path | None = None,
        cache_size: int = 1024,
        retries: int = 2,
        temperature: float = 0.0,
        max_tokens: int = 4096,
    ):
        if max_themes < 1 or max_tips < 0:
            raise ValueError("max_themes must be at least 1 and max_tips at least 0")
        self.backend = backend
        self.max_themes = max_themes
        self.max_tips = max_tips
        self.retries = retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prompt_rubrics = PromptRubrics(self.identity, max_size=cache_size, cache_dir=cache_dir)
        self.calls = 0  # rubrics actually written by the model (not from a cache)

    @property
    def identity(self) -> str:
        """Who writes this writer's rubrics, for their keys: the model, the options that change
        a rubric, and the wording of the writing prompt."""
        options = {"max_themes": self.max_themes, "max_tips": self.max_tips, "temperature": self.temperature,
                   "template": template_sha256("rubric_write")}
        return model_name(self.backend) + options_tag(options)

    # ------------------------------------------------------------------ messages
    def _messages(self, task: Task, scope: str, prompt: str | None, source: ImageData | None) -> list[Message]:
        text = render(
            "rubric_write", task=task, scope=scope, prompt=prompt,
            max_themes=self.max_themes, max_tips=self.max_tips,
        )
        parts: list = ["Source image (before editing):", source] if source is not None else []
        return [Message.user(*parts, text)]

    def prompt_key(self, task: Task, prompt: str, source: ImageData | None = None) -> str:
        """The key of a prompt-level rubric of this writer (:func:`prompt_rubric_key`)."""
        return self.prompt_rubrics.key(task, prompt, source)

    # ------------------------------------------------------------------- writing
    async def _write(self, task: Task, scope: str, prompt: str | None, source: ImageData | None) -> Rubric:
        asked = await ask_json(
            self.backend,
            self._messages(task, scope, prompt, source),
            lambda reply: parse_themes(reply, self.max_themes, self.max_tips),
            lambda parsed: parsed.problem,
            shape=THEMES_SHAPE,
            schema=THEMES_SCHEMA,
            retries=self.retries,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        self.calls += 1
        if asked.parsed.problem is not None:
            raise RubricWriteError(
                f"no usable rubric after {asked.attempts} replies: {asked.parsed.problem}"
            )
        return Rubric(
            themes=asked.parsed.themes,
            task=task,
            scope="prompt" if scope == "prompt" else "task",
            prompt=prompt,
            provenance=Provenance(
                method="zero-shot", generator_model=model_name(self.backend),
                max_themes=self.max_themes, max_tips=self.max_tips,
                source_sha256=source.sha256 if source else None,
            ),
        )

    async def write_task(self, task: Task) -> Rubric:
        """A task-level rubric for ``t2i`` or ``edit`` (raises :class:`RubricWriteError`)."""
        return await self._write(task, "task", None, None)

    async def write_prompt(
        self, task: Task, prompt: str, source: ImageData | None = None, *, fallback: Rubric | None = None
    ) -> Rubric:
        """A rubric for one prompt (edit: instruction + source image), kept by :class:`PromptRubrics`.

        When the model never gives a usable rubric, returns ``fallback`` if given (not kept, so
        a later call tries again), else raises :class:`RubricWriteError`.
        """
        problem = task_source_problem(task, source is not None)
        if problem is not None:
            raise ValueError(f"prompt-level rubric: {problem}")
        try:
            rubric, _ = await self.prompt_rubrics.get(
                task, prompt, source, lambda: self._write(task, "prompt", prompt, source)
            )
        except RubricWriteError:
            if fallback is not None:
                return fallback
            raise
        return rubric

    def write_task_sync(self, task: Task) -> Rubric:
        """Blocking :meth:`write_task`."""
        return run_sync(self.write_task(task))

    def write_prompt_sync(self, task: Task, prompt: str, source: ImageData | None = None, **kwargs) -> Rubric:
        """Blocking :meth:`write_prompt`."""
        return run_sync(self.write_prompt(task, prompt, source, **kwargs))
