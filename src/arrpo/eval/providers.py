"""Where each judge configuration gets its rubric for a pair.

* ``direct``: none (the paper's rubric-free baseline).
* ``task_rubric`` / ``guide``: one rubric file per task (a guided rubric is simply a rubric learned
  with human exemplars; it is loaded the same way and reported under its own name).
* ``prompt_rubrics``: one rubric per prompt, from a pluggable :class:`PromptRubricProvider`:
  ``files`` (precomputed JSON files), ``writer`` (the zero-shot writer in :mod:`arrpo.rubrics`),
  or ``module:factory`` (your own). Written rubrics are cached in the run directory, so a resumed
  run does not write them again.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from arrpo.datasets.pairs import PreferencePair
from arrpo.errors import ArrpoError
from arrpo.eval.config import ConfigError, EvalConfig, JudgeSpec
from arrpo.rubric import Rubric


class RubricUnavailable(ArrpoError, kind="rubric_unavailable"):
    """No rubric could be had for a pair; the pair is recorded as invalid with this reason."""


@runtime_checkable
class PromptRubricProvider(Protocol):
    """Gives the rubric for one pair's prompt (async: writers call a model)."""

    async def rubric_for(self, pair: PreferencePair) -> Rubric: ...


def prompt_key(pair: PreferencePair) -> str:
    """Key of a prompt-level rubric: the task and prompt text, plus the source image for edits
    (an edit rubric is written for its source, so pairs share it only when both match)."""
    text = f"{pair.task}\x00{pair.prompt}"
    if pair.source is not None:
        source = pair.source
        text += "\x00" + (hashlib.sha256(source.data).hexdigest() if source.data is not None else str(source.path))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class RubricSource:
    """The rubric (or none) each pair is judged with under one judge configuration."""

    def __init__(self, spec: JudgeSpec, *, by_task: dict[str, Rubric] | None = None,
                 provider: PromptRubricProvider | None = None, cache_dir: Path | None = None):
        self.spec = spec
        self.by_task = by_task or {}
        self.provider = provider
        self.cache_dir = cache_dir

    def check_tasks(self, tasks: set[str]) -> None:
        """Fail before any model call when a task of the dataset has no rubric."""
        if self.spec.kind in ("task_rubric", "guide") and "*" not in self.by_task:
            missing = sorted(tasks - set(self.by_task))
            if missing:
                raise ConfigError(f"judge {self.spec.name!r} has no rubric for task(s) {missing}")

    async def rubric_for(self, pair: PreferencePair) -> tuple[Rubric | None, str | None]:
        """(rubric, key of a cached prompt-level rubric or None)."""
        if self.spec.kind == "direct":
            return None, None
        if self.provider is None:
            return self.by_task.get(pair.task) or self.by_task["*"], None
        key = prompt_key(pair)
        cached = self.cache_dir / f"{key}.json" if self.cache_dir else None
        if cached is not None and cached.exists():
            return Rubric.load(cached), key
        try:
            rubric = await self.provider.rubric_for(pair)
        except RubricUnavailable:
            raise
        except Exception as exc:  # a provider failure is this pair's problem, not the run's
            raise RubricUnavailable(f"rubric provider failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(rubric, Rubric):
            raise RubricUnavailable(f"rubric provider returned {type(rubric).__name__}, not a Rubric")
        if cached is not None:
            rubric.save(cached)
        return rubric, key


class RubricFiles:
    """Prompt-level rubrics read from a folder: ``<pair id>.json`` or ``<prompt key>.json``."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise ConfigError(f"rubrics_dir {folder} is not a directory")
        self.folder = folder

    async def rubric_for(self, pair: PreferencePair) -> Rubric:
        safe_id = pair.id.replace("/", "__")
        for name in (f"{safe_id}.json", f"{prompt_key(pair)}.json"):
            path = self.folder / name
            if path.exists():
                return Rubric.load(path)
        raise RubricUnavailable(
            f"no prompt rubric in {self.folder} for pair {pair.id!r} (looked for {safe_id}.json, {prompt_key(pair)}.json)"
        )


class WrittenRubrics:
    """Prompt-level rubrics written zero-shot by :class:`arrpo.rubrics.RubricWriter` (edits send the
    source image); options are the writer's (``max_themes``, ``max_tips``, ``retries``, ...)."""

    def __init__(self, backend: Any, **options: Any):
        from arrpo.rubrics.write import RubricWriter

        try:
            self.writer = RubricWriter(backend, **options)
        except TypeError as exc:
            raise ConfigError(f"provider 'writer': bad provider_options ({exc})") from exc

    async def rubric_for(self, pair: PreferencePair) -> Rubric:
        source = pair.source.load() if pair.source is not None else None
        return await self.writer.write_prompt(pair.task, pair.prompt, source)  # type: ignore[arg-type]


def _load_factory(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"prompt rubric provider {target!r}: cannot import {module_name} ({exc})") from exc
    if not hasattr(module, attr):
        raise ConfigError(f"prompt rubric provider {target!r}: {module_name} has no attribute {attr!r}")
    return getattr(module, attr)


def build_provider(spec: JudgeSpec, config: EvalConfig, backend: Any) -> PromptRubricProvider:
    """The prompt-level rubric provider a ``prompt_rubrics`` judge names."""
    provider = spec.provider or "writer"
    if provider == "files":
        return RubricFiles(config.path(spec.rubrics_dir or "."))
    if provider == "writer":
        return WrittenRubrics(backend, **spec.provider_options)
    if ":" not in provider:
        raise ConfigError(f"judge {spec.name!r}: provider must be files, writer or module:factory (got {provider!r})")
    factory = _load_factory(provider)
    made = factory(backend=backend, **spec.provider_options)
    if inspect.iscoroutinefunction(made):
        func = made

        class _Wrapped:
            async def rubric_for(self, pair: PreferencePair) -> Rubric:
                return await func(pair)

        made = _Wrapped()
    if not isinstance(made, PromptRubricProvider):
        raise ConfigError(f"judge {spec.name!r}: provider {provider!r} did not give an object with async rubric_for(pair)")
    return made


def build_source(spec: JudgeSpec, config: EvalConfig, backend: Any, run_dir: Path) -> RubricSource:
    """The :class:`RubricSource` of a judge configuration (rubric files are loaded now)."""
    if spec.kind == "direct":
        return RubricSource(spec)
    if spec.kind in ("task_rubric", "guide"):
        by_task = {}
        for task, name in spec.rubric_files().items():
            try:
                by_task[task] = Rubric.load(config.path(name))
            except FileNotFoundError:
                raise ConfigError(f"judge {spec.name!r}: rubric file {config.path(name)} not found") from None
            except ValueError as exc:
                raise ConfigError(f"judge {spec.name!r}: {exc}") from exc
        return RubricSource(spec, by_task=by_task)
    provider = build_provider(spec, config, backend)
    return RubricSource(spec, provider=provider, cache_dir=run_dir / "rubrics" / spec.name)
