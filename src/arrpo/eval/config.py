"""Judge configurations for ``arrpo eval``: which judges to compare, read from a YAML file.

Example (``examples/eval/judges.yaml``)::

    backend: {endpoint: http://localhost:8000/v1, model: Qwen/Qwen3-VL-8B-Instruct}
    judges:
      - {name: direct, kind: direct}
      - {name: arr, kind: task_rubric, rubric: {t2i: rubrics/t2i.json, edit: rubrics/edit.json}}
      - {name: arr-prompt, kind: prompt_rubrics, provider: files, rubrics_dir: prompt_rubrics/}
      - {name: arr-guide, kind: guide, rubric: rubrics/t2i-guided.json}

Relative paths are relative to the YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from arrpo.errors import ConfigError, describe_validation_error
from arrpo.judge_settings import AskSettings, JudgeSettings
from arrpo.vlm.settings import BackendSettings
from arrpo.vocab import ForwardOrder

JudgeKind = Literal["direct", "task_rubric", "prompt_rubrics", "guide"]


class JudgeSpec(AskSettings):
    """One judge configuration to evaluate: its name, kind and rubric, the backend overrides, and
    the :class:`~arrpo.judge_settings.AskSettings` at the judge's level (``temperature: 0.7``).

    Evaluation asks every pair in both orders itself, so the order policy of
    :class:`~arrpo.judge_settings.JudgeSettings` (``order``, ``on_disagree``, ``seed``) is not a key here.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Short name; used for file names.")
    kind: JudgeKind = Field(description="direct | task_rubric | prompt_rubrics | guide.")
    rubric: str | dict[str, str] | None = Field(
        None, description="task_rubric/guide: a rubric file, or {t2i: file, edit: file}."
    )
    provider: str | None = Field(
        None, description="prompt_rubrics: 'files' (read rubrics_dir), 'writer' (arrpo.rubrics) or 'module:factory'."
    )
    rubrics_dir: str | None = Field(None, description="prompt_rubrics with provider 'files': folder of rubric JSON.")
    provider_options: dict[str, Any] = Field(default_factory=dict)
    backend: BackendSettings = Field(
        default_factory=BackendSettings,
        description="Overrides of the shared backend settings (only the keys given here apply).",
    )

    @field_serializer("backend")
    def _overrides_only(self, backend: BackendSettings, info: SerializationInfo) -> dict[str, Any]:
        """A spec records the overrides it was given, not the whole backend (run.json compares specs)."""
        return backend.model_dump(mode=info.mode, exclude_unset=True)

    @model_validator(mode="before")
    @classmethod
    def _default_provider(cls, data: Any) -> Any:
        """prompt_rubrics read ``rubrics_dir`` when one is given, else write rubrics (provider 'writer')."""
        if isinstance(data, dict) and data.get("kind") == "prompt_rubrics" and not data.get("provider"):
            data = {**data, "provider": "files" if data.get("rubrics_dir") else "writer"}
        return data

    @model_validator(mode="after")
    def _check_kind(self) -> JudgeSpec:
        if self.kind in ("task_rubric", "guide") and not self.rubric:
            raise ValueError(f"judge {self.name!r} ({self.kind}) needs 'rubric: FILE' or 'rubric: {{t2i: FILE, edit: FILE}}'")
        if self.kind == "direct" and self.rubric:
            raise ValueError(f"judge {self.name!r} is 'direct' and takes no rubric")
        if self.kind == "prompt_rubrics" and self.provider == "files" and not self.rubrics_dir:
            raise ValueError(f"judge {self.name!r}: provider 'files' needs rubrics_dir")
        if self.evidence_only and self.kind == "prompt_rubrics" and self.provider != "files":
            raise ValueError(f"judge {self.name!r} is evidence_only: it asks no model, so it cannot write prompt "
                             "rubrics (and reads none); use kind: direct")
        return self

    def judge_settings(self) -> JudgeSettings:
        """The settings of this judge's :class:`~arrpo.judge.PairwiseJudge`: its own, shown in the
        given order (the runner asks forward and reverse itself)."""
        return JudgeSettings.of(self, order="given")

    def rubric_files(self) -> dict[str, str]:
        """Rubric file per task (``"*"`` for one file used for every task)."""
        if self.rubric is None:
            return {}
        if isinstance(self.rubric, str):
            return {"*": self.rubric}
        unknown = set(self.rubric) - {"t2i", "edit"}
        if unknown:
            raise ConfigError(f"judge {self.name!r}: rubric keys must be t2i/edit, not {sorted(unknown)}")
        return dict(self.rubric)


class EvalConfig(BaseModel):
    """A judge configuration file."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendSettings = Field(default_factory=BackendSettings)
    judges: list[JudgeSpec] = Field(min_length=1)
    forward: ForwardOrder = Field(
        "preferred_first",
        description="What 'forward' means: the human-preferred image shown first, or the dataset's A first.",
    )
    max_pixels: int | None = Field(None, gt=0, description="Downscale images above this many pixels before judging.")
    base_dir: str = Field(".", description="Folder relative paths are resolved against (the YAML's folder).")

    @field_validator("judges")
    @classmethod
    def _unique_names(cls, judges: list[JudgeSpec]) -> list[JudgeSpec]:
        names = [j.name for j in judges]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"judge names must be unique; repeated: {duplicates}")
        return judges

    def path(self, name: str) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() else Path(self.base_dir) / path

    def backend_for(self, spec: JudgeSpec) -> BackendSettings:
        """The shared backend settings with the judge's overrides applied."""
        overrides = spec.backend.model_dump(exclude_unset=True)
        if not overrides:
            return self.backend
        return self.backend.model_copy(update=overrides)


def load_config(path: str | Path) -> EvalConfig:
    """Read a YAML judge configuration; relative paths inside it are relative to its folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such judge configuration file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'judges' list")
    data.setdefault("base_dir", str(path.resolve().parent))
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc, whole='config')}") from exc
