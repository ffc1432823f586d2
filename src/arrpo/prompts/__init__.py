"""Prompt templates (Jinja2 files in this package) and the function that renders them."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import jinja2


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("arrpo", "prompts"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


@lru_cache(maxsize=64)
def _template(name: str) -> jinja2.Template:
    return _environment().get_template(f"{name}.j2")


def render(name: str, **context: Any) -> str:
    """Render the template ``prompts/<name>.j2`` with ``context``; undefined names are errors."""
    return _template(name).render(**context).strip()


def template_names() -> list[str]:
    """Names of all packaged templates (without ``.j2``)."""
    return sorted(n[:-3] for n in _environment().list_templates() if n.endswith(".j2"))


def template_sha256(*names: str) -> str:
    """Hash of the source of the named templates (with their includes listed by name): a state or
    cache keyed on it is not reused after the wording of a prompt changed."""
    env = _environment()
    digest = hashlib.sha256()
    for name in names:
        source, _, _ = env.loader.get_source(env, f"{name}.j2")  # type: ignore[union-attr]
        digest.update(name.encode() + b"\x00" + source.encode("utf-8") + b"\x00")
    return digest.hexdigest()
