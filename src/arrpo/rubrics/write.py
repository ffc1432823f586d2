"""Zero-shot rubrics: a task-level rubric with no data, or a rubric for one prompt.

Prompt-level rubrics (the paper's "prompt-specific rubrics") are cached by the hash of the
request that writes them (model, rendered instructions, source image), in memory and optionally
in a folder of JSON files, and concurrent requests for the same prompt share one model call, so
a training run asks once per prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from arrpo._sync import run_sync
from arrpo.errors import ArrpoError
from arrpo.images import ImageData
from arrpo.prompts import render
from arrpo.rubric import Provenance, Rubric
from arrpo.rubrics.ask import THEMES_SCHEMA, THEMES_SHAPE, ask_json, model_name
from arrpo.rubrics.parsing import parse_themes
from arrpo.schema import Task
from arrpo.vlm.base import Message, VLMBackend


class RubricWriteError(ArrpoError, RuntimeError, kind="backend"):
    """The model's replies never held a usable rubric (after the repair retries)."""


class RubricWriter:
    """Write Theme-Tips rubrics zero-shot.

    Args:
        backend: the VLM (any :class:`~arrpo.vlm.base.VLMBackend`).
        max_themes, max_tips: size limits of the rubric.
        cache_dir: folder for prompt-level rubrics (``<hash>.json``); ``None``: memory only.
        retries: how often to ask again, quoting the problem, after an unusable reply.
    """

    def __init__(
        self,
        backend: VLMBackend,
        *,
        max_themes: int = 10,
        max_tips: int = 4,
        cache_dir: str | Path | None = None,
        retries: int = 2,
        temperature: float = 0.0,
        max_tokens: int = 4096,
    ):
        if max_themes < 1 or max_tips < 0:
            raise ValueError("max_themes must be at least 1 and max_tips at least 0")
        self.backend = backend
        self.max_themes = max_themes
        self.max_tips = max_tips
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.retries = retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._memory: dict[str, Rubric] = {}
        self._pending: dict[str, asyncio.Future[Rubric]] = {}
        self.calls = 0  # rubrics actually written by the model (not from a cache)

    # ------------------------------------------------------------------ messages
    def _messages(self, task: Task, scope: str, prompt: str | None, source: ImageData | None) -> list[Message]:
        text = render(
            "rubric_write", task=task, scope=scope, prompt=prompt,
            max_themes=self.max_themes, max_tips=self.max_tips,
        )
        parts: list = ["Source image (before editing):", source] if source is not None else []
        return [Message.user(*parts, text)]

    def prompt_key(self, task: Task, prompt: str, source: ImageData | None = None) -> str:
        """The cache key of a prompt-level rubric: hash of model id, request text and source."""
        text = self._messages(task, "prompt", prompt, None)[0].text
        blob = "\x00".join([model_name(self.backend), task, text, source.sha256 if source else ""])
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

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
        """A rubric for one prompt (edit: instruction + source image), cached by prompt hash.

        When the model never gives a usable rubric, returns ``fallback`` if given (not cached, so
        a later call tries again), else raises :class:`RubricWriteError`.
        """
        if task == "edit" and source is None:
            raise ValueError("a prompt-level edit rubric needs the source image")
        if task == "t2i" and source is not None:
            raise ValueError("a t2i rubric takes no source image")
        key = self.prompt_key(task, prompt, source)
        cached = self._memory.get(key) or self._read_cached(key)
        if cached is not None:
            self._memory[key] = cached
            return cached
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._write_and_store(key, task, prompt, source))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        try:
            return await asyncio.shield(pending)
        except RubricWriteError:
            if fallback is not None:
                return fallback
            raise

    async def _write_and_store(self, key: str, task: Task, prompt: str, source: ImageData | None) -> Rubric:
        rubric = await self._write(task, "prompt", prompt, source)
        self._memory[key] = rubric
        self._store(key, rubric)
        return rubric

    def write_task_sync(self, task: Task) -> Rubric:
        """Blocking :meth:`write_task`."""
        return run_sync(self.write_task(task))

    def write_prompt_sync(self, task: Task, prompt: str, source: ImageData | None = None, **kwargs) -> Rubric:
        """Blocking :meth:`write_prompt`."""
        return run_sync(self.write_prompt(task, prompt, source, **kwargs))

    # --------------------------------------------------------------------- cache
    def _read_cached(self, key: str) -> Rubric | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return Rubric.load(path)
        except ValueError:
            return None  # a damaged cache entry is rewritten

    def _store(self, key: str, rubric: Rubric) -> None:
        if self.cache_dir is not None:
            rubric.save(self.cache_dir / f"{key}.json")
