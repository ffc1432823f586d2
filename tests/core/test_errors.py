"""One exception base with a machine-readable kind; the command line reports it once, with exit 2."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from arrpo.errors import HTTP_STATUS, ArrpoError, BadInputError, kind_of
from arrpo.rewards import NonFiniteRewardError, check_reward_parameters, group_rewards
from tests.core.test_cli_judge import arrpo

SRC = Path(__file__).resolve().parents[2] / "src" / "arrpo"
_BUILTIN_BASES = {"Exception", "ValueError", "RuntimeError", "ArithmeticError", "OSError", "KeyError"}


def project_exception_classes() -> dict[str, list[str]]:
    """Every class under src/arrpo deriving (by name) from a built-in exception or another one found."""
    classes: dict[str, list[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                classes[f"{path.relative_to(SRC)}:{node.name}"] = bases
    names = {key.split(":")[1]: bases for key, bases in classes.items()}

    def is_exception(bases: list[str], depth: int = 0) -> bool:
        return depth < 8 and any(b in _BUILTIN_BASES or b == "ArrpoError"
                                 or (b in names and is_exception(names[b], depth + 1)) for b in bases)

    return {key: bases for key, bases in classes.items() if is_exception(bases)}


def test_every_project_exception_derives_from_arrpo_error():
    found = project_exception_classes()
    assert len(found) >= 15  # the scan sees the project's exceptions
    names = {key.split(":")[1]: bases for key, bases in found.items()}

    def rooted(name: str, depth: int = 0) -> bool:
        if name == "ArrpoError":
            return True
        return depth < 8 and name in names and any(rooted(b, depth + 1) for b in names[name])

    orphans = [key for key in found if not rooted(key.split(":")[1])]
    assert orphans == []


def test_kinds_and_compatibility():
    from arrpo.datasets import DatasetError
    from arrpo.datasets.pairs import PairFileError
    from arrpo.images import ImageError
    from arrpo.vlm.base import BackendError, BackendUnavailable

    assert DatasetError("x").kind == "dataset" and isinstance(DatasetError("x"), ValueError)
    assert PairFileError("x").kind == "bad_input" and isinstance(PairFileError("x"), ValueError)
    assert BackendUnavailable("x").kind == "backend_unavailable" and BackendError("x").kind == "backend"
    image = ImageError("big", kind="too_large")
    assert image.kind == "too_large" and image.http_status == 413 and ImageError("y").kind == "image"
    assert kind_of(KeyError("k")) == "error" and kind_of(BadInputError("b")) == "bad_input"
    assert all(100 <= status < 600 for status in HTTP_STATUS.values())
    with pytest.raises(ValueError, match="unknown error kind"):
        ArrpoError("x", kind="no-such-kind")


def test_commands_report_project_errors_once_with_exit_2(tmp_path):
    report = arrpo("report", str(tmp_path / "no-run"))
    assert report.returncode == 2 and report.stderr.startswith("error:") and "Traceback" not in report.stderr
    config = arrpo("eval", "--dataset", "jsonl:x.jsonl", "--judge", str(tmp_path / "missing.yaml"),
                   "--out", str(tmp_path / "run"))
    assert config.returncode == 2 and "no such judge configuration file" in config.stderr
    assert "Traceback" not in config.stderr


@pytest.mark.parametrize(("params", "message"), [
    ({"win": math.nan}, "win"), ({"lose": math.inf}, "lose"), ({"scale": -math.inf}, "scale"),
    ({"win": -1.0}, r"win \+ lose must be positive"), ({"win": 1e308, "lose": 1e308}, "overflows"),
    ({"scale": 0.0}, "scale"), ({"clip": math.nan}, "clip"), ({"eps": -1.0}, "eps"),
])
def test_reward_parameters_are_checked_before_any_reward_is_computed(params, message):
    with pytest.raises(BadInputError, match=message):
        check_reward_parameters(**params)
    with pytest.raises(ValueError, match=message):
        group_rewards(2, [(0, 1)], ["A"], **params)


def test_rewards_stay_finite_and_rank_the_winner_first():
    outcome = group_rewards(3, [(0, 1), (0, 2), (1, 2)], ["A", "A", "B"], win=1e300, lose=1e300)
    assert all(math.isfinite(v) for v in (*outcome.rewards, *outcome.advantages))
    assert outcome.rewards[0] > outcome.rewards[2] > outcome.rewards[1]
    assert issubclass(NonFiniteRewardError, ArrpoError)


def test_one_formatter_words_every_pydantic_error_on_one_line():
    from typing import Optional

    from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

    from arrpo.errors import describe_validation_error

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prompt: str
        size: Optional[int] = None

        @model_validator(mode="after")
        def _whole(self):
            if self.size == 0:
                raise ValueError("size 0 means nothing")
            return self

    with pytest.raises(ValidationError) as missing:
        Body.model_validate({"trian": 1, "size": "x"})
    assert describe_validation_error(missing.value) == (
        "prompt: Field required; size: Input should be a valid integer, unable to parse string as an integer; "
        "trian: unknown key")
    assert describe_validation_error(missing.value, missing="field required", unknown="unknown field",
                                     limit=1) == "prompt: field required (and 2 more)"
    with pytest.raises(ValidationError) as whole:
        Body.model_validate({"prompt": "p", "size": 0})
    assert describe_validation_error(whole.value) == "value: size 0 means nothing"
    assert describe_validation_error(whole.value, whole="") == "size 0 means nothing"

    class Request(BaseModel):
        body: Body

    with pytest.raises(ValidationError) as nested:
        Request.model_validate({"body": {}})
    assert describe_validation_error(nested.value, hide=("body",)) == "prompt: Field required"
    assert describe_validation_error(ValueError("plain\n  message")) == "plain message"


def test_exception_names_are_unique_and_shadow_neither_pydantic_nor_builtins():
    import builtins

    import pydantic
    import pydantic_core

    found = project_exception_classes()
    by_name: dict[str, list[str]] = {}
    for key in found:
        by_name.setdefault(key.split(":")[1], []).append(key.split(":")[0])
    assert len(by_name) >= 15
    assert {name: files for name, files in by_name.items() if len(files) > 1} == {}
    theirs = {name for module in (builtins, pydantic, pydantic_core) for name in dir(module)
              if isinstance(getattr(module, name, None), type) and issubclass(getattr(module, name), BaseException)}
    assert "ValidationError" in theirs and "TimeoutError" in theirs  # the scan sees both
    assert sorted(set(by_name) & theirs) == []
