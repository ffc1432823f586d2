"""The one protocol every VLM backend speaks: messages with text and image parts in, text out.

Backends (OpenAI-compatible HTTP, in-process transformers, offline vLLM) implement
:class:`VLMBackend`; caching, retries and concurrency limits are separate wrappers around any
backend (see :mod:`arrpo.vlm.wrappers`), so every combination composes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Union, runtime_checkable

from arrpo.errors import ArrpoError
from arrpo.images import ImageData
from arrpo.schema import Usage
from arrpo.vocab import BackendFault

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    image: ImageData


Part = Union[TextPart, ImagePart]


@dataclass(frozen=True)
class Message:
    role: Role
    parts: tuple[Part, ...]

    @classmethod
    def user(cls, *parts: Part | str | ImageData) -> Message:
        return cls("user", tuple(_as_part(p) for p in parts))

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", (TextPart(text),))

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls("assistant", (TextPart(text),))

    @property
    def images(self) -> list[ImageData]:
        return [p.image for p in self.parts if isinstance(p, ImagePart)]

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))


def _as_part(value: Part | str | ImageData) -> Part:
    if isinstance(value, str):
        return TextPart(value)
    if isinstance(value, ImageData):
        return ImagePart(value)
    return value


@dataclass(frozen=True)
class VLMRequest:
    """A chat request. ``json_schema`` is a hint: backends that can constrain output use it."""

    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int = 1024
    json_schema: dict[str, Any] | None = None
    seed: int | None = None

    def fingerprint(self, model_id: str) -> str:
        """Hash of model id, messages (images by content hash) and sampling parameters."""
        payload = {
            "model": model_id,
            "messages": [
                {
                    "role": m.role,
                    "parts": [
                        {"text": p.text} if isinstance(p, TextPart) else {"image": p.image.sha256}
                        for p in m.parts
                    ],
                }
                for m in self.messages
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "json_schema": self.json_schema,
            "seed": self.seed,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def options_tag(options: dict[str, Any]) -> str:
    """A short stable suffix for a backend's ``model_id`` naming the set options that change its
    answers (template variables, extra request fields, JSON mode), so the response cache never
    serves one configuration's answer to another. Empty when none is set."""
    shown = {key: value for key, value in options.items() if value is not None and value != {}}
    if not shown:
        return ""
    blob = json.dumps(shown, sort_keys=True, default=str, separators=(",", ":"))
    return "+" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class VLMResponse:
    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    cached: bool = False
    latency_s: float = 0.0


class BackendError(ArrpoError, kind="backend"):
    """A backend call failed. ``retryable`` says whether trying again may help; ``fault`` says how
    the transport failed when the backend knows (``connect``, ``timeout``, ``bad_response``), so an
    endpoint pool can count failures by kind (:func:`arrpo.vlm.pool.fault_of`)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        fault: BackendFault | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.fault: BackendFault | None = fault


class BackendUnavailable(BackendError, kind="backend_unavailable"):
    """The backend cannot be used at all (not configured, weights missing): a user must act."""


class NoModel:
    """The backend of a judge that asks no model (the evidence-only judge, built with ``backend=None``).

    Asking it raises :class:`BackendUnavailable`: a judge that needs a model was built without one.
    """

    model_id = "none"

    async def complete(self, request: VLMRequest) -> VLMResponse:
        raise BackendUnavailable(
            "this judge was built without a model backend (only an evidence_only judge runs without one); "
            "configure an endpoint and model"
        )

    async def aclose(self) -> None:
        return None


@runtime_checkable
class VLMBackend(Protocol):
    """Anything that answers a :class:`VLMRequest` asynchronously."""

    @property
    def model_id(self) -> str: ...

    async def complete(self, request: VLMRequest) -> VLMResponse: ...

    async def aclose(self) -> None: ...
