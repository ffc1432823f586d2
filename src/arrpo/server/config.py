"""Settings of the reward service: limits, defaults and who may call it."""

from __future__ import annotations

from dataclasses import dataclass, field

from arrpo.errors import ConfigError
from arrpo.rubric import Rubric
from arrpo.server.protocol import DEFAULT_LIMITS, ServiceLimits
from arrpo.text import DEFAULT_MAX_ANSWER_CHARS
from arrpo.vocab import OrderPolicy


@dataclass
class ServiceConfig:
    """What the service accepts and how hard it works.

    Attributes:
        token: bearer token every ``/v1`` and ``/metrics`` request must carry (``None``: no auth;
            only allowed when bound to loopback, see :func:`arrpo.server.auth.check_bind`).
        max_body_bytes: largest request body; larger ones get 413 before being read in full.
        max_images: most candidates in one ``group_rewards`` request (pairs grow as N²).
        max_image_pixels: largest decoded image (width × height); larger ones get 413.
        max_pixels: optional pixel budget; images above it are downscaled before judging.
        max_prompt_chars: longest prompt accepted.
        max_rubric_chars: most characters of text (themes and tips) in a request's inline rubric,
            which is sent to the model with every pair; longer: 422.
        max_pending: admission capacity in judge calls (a pair costs 1, or 2 with order
            ``both``). Requests beyond it get 503 with Retry-After instead of waiting in line.
        order: default order policy.
        task_rubrics: rubric per task (``t2i``/``edit``), loaded from files at start-up.
        prompt_rubric_cache_size: how many prompt-level rubrics are kept in memory.
        max_answer_chars: most characters of a model answer a verdict keeps (``None``: all).
    """

    token: str | None = None
    max_body_bytes: int = DEFAULT_LIMITS.max_body_bytes
    max_images: int = DEFAULT_LIMITS.max_images
    max_image_pixels: int = DEFAULT_LIMITS.max_image_pixels
    max_pixels: int | None = None
    max_prompt_chars: int = DEFAULT_LIMITS.max_prompt_chars
    max_rubric_chars: int = 32_000
    max_pending: int = 64
    order: OrderPolicy = "random"
    task_rubrics: dict[str, Rubric] = field(default_factory=dict)
    prompt_rubric_cache_size: int = 1024
    max_answer_chars: int | None = DEFAULT_MAX_ANSWER_CHARS

    def __post_init__(self) -> None:
        """Refuse settings the service could not work with (at start, not on the first request).

        Raises:
            ConfigError: a ``ValueError`` naming the setting and the value.
        """
        for name in ("max_body_bytes", "max_images", "max_image_pixels", "max_prompt_chars", "max_rubric_chars",
                     "max_pending", "prompt_rubric_cache_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number (got {value!r})")
        if self.max_pixels is not None and (
            isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1
        ):
            raise ConfigError(f"max_pixels must be a positive number of pixels or unset (got {self.max_pixels!r})")
        if self.max_answer_chars is not None and (
            isinstance(self.max_answer_chars, bool) or not isinstance(self.max_answer_chars, int)
            or self.max_answer_chars < 1
        ):
            raise ConfigError(
                f"max_answer_chars must be a positive number of characters or unset (got {self.max_answer_chars!r})"
            )
        if self.max_images < 2:
            raise ConfigError("max_images must be at least 2 (a group needs a pair)")
        if self.order not in ("given", "random", "both"):
            raise ConfigError(f"order must be given, random or both (got {self.order!r})")
        if self.token is not None and not self.token:
            raise ConfigError("token must not be empty (use None for no authentication)")
        unknown = set(self.task_rubrics) - {"t2i", "edit"}
        if unknown:
            raise ConfigError(f"task rubrics are keyed by 't2i' or 'edit', not {sorted(unknown)}")

    def limits(self) -> ServiceLimits:
        """The limits a request must keep to, as reported by ``/health``."""
        return ServiceLimits(
            max_images=self.max_images, max_body_bytes=self.max_body_bytes,
            max_image_pixels=self.max_image_pixels, max_prompt_chars=self.max_prompt_chars,
        )

    def __repr__(self) -> str:  # never print the token
        token = "<set>" if self.token else None
        return (
            f"ServiceConfig(token={token}, max_body_bytes={self.max_body_bytes}, max_images="
            f"{self.max_images}, max_image_pixels={self.max_image_pixels}, max_pending={self.max_pending}, "
            f"order={self.order!r}, task_rubrics={sorted(self.task_rubrics)})"
        )
