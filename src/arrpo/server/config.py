"""Settings of the reward service: limits, defaults and who may call it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arrpo.errors import ConfigError, describe_validation_error
from arrpo.judge_settings import JudgeSettings
from arrpo.rubric import Rubric
from arrpo.server.protocol import DEFAULT_LIMITS, ServiceLimits
from arrpo.vocab import Pairing, Task


class ServiceConfig(BaseModel):
    """What the service accepts and how hard it works.

    A setting the service could not work with is refused when the config is made, not on the
    first request: :class:`~arrpo.errors.ConfigError` (a ``ValueError``) naming each bad
    setting on one line.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str | None = Field(
        None, min_length=1,
        description="Bearer token every /v1 and /metrics request must carry (None: no auth; only allowed when "
        "bound to loopback, see arrpo.server.auth.check_bind). Never printed.",
    )
    max_body_bytes: int = Field(
        DEFAULT_LIMITS.max_body_bytes, ge=1, strict=True, description="Largest request body; larger ones get 413 before being read in full."
    )
    max_images: int = Field(
        DEFAULT_LIMITS.max_images, ge=2, strict=True,
        description="Most candidates in one group_rewards request (a group needs a pair; pairs grow as N²).",
    )
    max_image_pixels: int = Field(
        DEFAULT_LIMITS.max_image_pixels, ge=1, strict=True, description="Largest decoded image (width × height); larger ones get 413."
    )
    max_pixels: int | None = Field(None, ge=1, strict=True, description="Optional pixel budget; images above it are downscaled before judging.")
    max_prompt_chars: int = Field(DEFAULT_LIMITS.max_prompt_chars, ge=1, strict=True, description="Longest prompt accepted.")
    max_rubric_chars: int = Field(
        32_000, ge=1, strict=True,
        description="Most characters of text (themes and tips) in a request's inline rubric, which is sent to the "
        "model with every pair; longer: 422.",
    )
    max_pending: int = Field(
        64, ge=1, strict=True,
        description="Admission capacity in judge calls (a pair costs 1, or 2 with order both). Requests beyond it "
        "get 503 with Retry-After instead of waiting in line.",
    )
    judge: JudgeSettings = Field(
        default_factory=JudgeSettings,
        description="How every pair is judged; a request's `order` replaces judge.order for that request.",
    )
    task_rubrics: dict[Task, Rubric] = Field(
        default_factory=dict, description="Rubric per task (t2i, edit), loaded from files at start-up."
    )
    prompt_rubric_cache_size: int = Field(1024, ge=1, strict=True, description="How many prompt-level rubrics are kept in memory.")
    pairing: Pairing = Field(
        "all_pairs",
        description="Pairing of a group request that names none (all_pairs, random_pairs, tournament); the "
        "gathered (/v1/group_member) and Flow-Factory groups use it too. Reported in /health limits.",
    )

    def __init__(self, **settings: Any) -> None:
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            raise ConfigError(
                f"reward service settings: {describe_validation_error(exc, unknown='unknown setting')}"
            ) from None

    def limits(self) -> ServiceLimits:
        """The limits a request must keep to, as reported by ``/health``."""
        return ServiceLimits(
            max_images=self.max_images, max_body_bytes=self.max_body_bytes,
            max_image_pixels=self.max_image_pixels, max_prompt_chars=self.max_prompt_chars, pairing=self.pairing,
            order=self.judge.order,
        )

    def __repr_args__(self):  # never print the token; rubrics by task only
        for name, value in super().__repr_args__():
            if name == "token":
                yield name, "<set>" if value else None
            elif name == "task_rubrics":
                yield name, sorted(value)
            else:
                yield name, value
