"""Where each judge configuration gets its rubric for a pair.

* ``direct``: none (the paper's rubric-free baseline).
* ``task_rubric`` / ``guide``: one rubric file per task (a guided rubric is simply a rubric learned
  with human exemplars; it is loaded the same way and reported under its own name).
* ``prompt_rubrics``: one rubric per prompt, from a pluggable :class:`PromptRubricProvider`:
  ``files`` (precomputed JSON files), ``writer`` (the zero-shot writer in :mod:`arrpo.rubrics`),
  or ``module:factory`` (your own). Every prompt-level rubric is kept by the project's one
  prompt-rubric cache (:class:`~arrpo.rubrics.write.PromptRubrics`) in the run directory,
  ``rubrics/<judge>/<key>.json``, keyed by the provider (the model and options of a writer), the
  task, the prompt and the source image's content: a resumed run does not write them again.

This module keeps only the evaluation's policy: a rubric that cannot be had makes the pair's
record invalid (:class:`RubricUnavailable`), never the run's end.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from arrpo.datasets.pairs import PreferencePair
from arrpo.errors import ArrpoError
from arrpo.eval.config import ConfigError, EvalConfig, JudgeSpec
from arrpo.images import ImageData
from arrpo.rubric import Rubric
from arrpo.rubrics.write import PromptRubrics, RubricWriteError, prompt_rubric_key
from arrpo.vlm.base import options_tag


class RubricUnavailable(ArrpoError, kind="rubric_unavailable"):
    """No rubric could be had for a pair; the pair is recorded as invalid with this reason."""


@runtime_checkable
class PromptRubricProvider(Protocol):
    """Supplies the rubric for one pair's prompt (the ``provider`` of a ``prompt_rubrics`` judge;
    async: writers call a model)."""

    async def rubric_for(self, pair: PreferencePair) -> Rubric: ...


#: The writer part of the keys of rubrics read from files (no model wrote them for this run).
FILES_WRITER = "files"


class RubricSource:
    """The rubric (or none) each pair is judged with under one judge configuration."""

    def __init__(self, spec: JudgeSpec, *, by_task: dict[str, Rubric] | None = None,
                 provider: PromptRubricProvider | None = None, prompt_rubrics: PromptRubrics | None = None):
        self.spec = spec
        self.by_task = by_task or {}
        self.provider = provider
        self.prompt_rubrics = prompt_rubrics

    def check_tasks(self, tasks: set[str]) -> None:
        """Fail before any model call when a task of the dataset has no rubric."""
        if self.spec.kind in ("task_rubric", "guide") and "*" not in self.by_task:
            missing = sorted(tasks - set(self.by_task))
            if missing:
                raise ConfigError(f"judge {self.spec.name!r} has no rubric for task(s) {missing}")

    async def rubric_for(self, pair: PreferencePair) -> tuple[Rubric | None, str | None]:
        """(rubric, key of its file under ``rubrics/<judge>/`` for a prompt-level rubric, else None)."""
        if self.spec.kind == "direct":
            return None, None
        if self.provider is None or self.prompt_rubrics is None:
            return self.by_task.get(pair.task) or self.by_task["*"], None
        provider = self.provider
        source = _source_image(pair)
        try:
            rubric, _ = await self.prompt_rubrics.get(pair.task, pair.prompt, source,
                                                      lambda: provider.rubric_for(pair))
        except RubricWriteError as exc:
            cause = exc.__cause__
            raise RubricUnavailable(str(cause if isinstance(cause, RubricUnavailable) else exc)) from exc
        return rubric, self.prompt_rubrics.key(pair.task, pair.prompt, source)


def _source_image(pair: PreferencePair) -> ImageData | None:
    """The pair's source image, for the rubric's key (an unreadable one: the pair has no rubric)."""
    if pair.source is None:
        return None
    try:
        return pair.source.load()
    except (OSError, ValueError) as exc:  # ImageError is a ValueError
        raise RubricUnavailable(f"the source image cannot be read: {exc}") from exc


class RubricFiles:
    """Prompt-level rubrics read from a folder: ``<pair id>.json`` (``/`` as ``__``) or
    ``<key>.json``, the key of :func:`~arrpo.rubrics.write.prompt_rubric_key` with the writer
    ``"files"`` (task, prompt and the source image's content)."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise ConfigError(f"rubrics_dir {folder} is not a directory")
        self.folder = folder

    async def rubric_for(self, pair: PreferencePair) -> Rubric:
        safe_id = pair.id.replace("/", "__")
        key = prompt_rubric_key(FILES_WRITER, pair.task, pair.prompt, _source_image(pair))
        for name in (f"{safe_id}.json", f"{key}.json"):
            path = self.folder / name
            if path.exists():
                return Rubric.load(path)
        raise RubricUnavailable(
            f"no prompt rubric in {self.folder} for pair {pair.id!r} (looked for {safe_id}.json, {key}.json)"
        )


class WrittenRubrics:
    """Prompt-level rubrics written zero-shot by :class:`arrpo.rubrics.RubricWriter` (edits send the
    source image); options are the writer's (``max_themes``, ``max_tips``, ``retries``, ...). The
    rubrics are kept by the :class:`RubricSource`'s cache, not by the writer."""

    def __init__(self, backend: Any, **options: Any):
        from arrpo.rubrics.write import RubricWriter

        try:
            self.writer = RubricWriter(backend, cache_size=0, **options)
        except TypeError as exc:
            raise ConfigError(f"provider 'writer': bad provider_options ({exc})") from exc

    @property
    def identity(self) -> str:
        return self.writer.identity

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


def provider_identity(spec: JudgeSpec, provider: PromptRubricProvider, backend: Any) -> str:
    """Who writes a provider's rubrics, for their keys: ``files``, the writer's model and options,
    or the factory with its options and the model it was given."""
    if isinstance(provider, RubricFiles):
        return FILES_WRITER
    if isinstance(provider, WrittenRubrics):
        return provider.identity
    model = getattr(backend, "model_id", "") if backend is not None else ""
    return f"{spec.provider}{options_tag(spec.provider_options)}@{model.rsplit('#', 1)[-1]}"


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
    kept = PromptRubrics(provider_identity(spec, provider, backend), cache_dir=run_dir / "rubrics" / spec.name)
    return RubricSource(spec, provider=provider, prompt_rubrics=kept)
