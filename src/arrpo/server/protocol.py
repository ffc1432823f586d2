"""The reward service's JSON protocol: request and response bodies (pydantic; no web framework).

Shared by the server (:mod:`arrpo.server.app`) and the client (:mod:`arrpo.client`), and documented
in ``docs/serving.md``. Images travel as base64 text (optionally as a ``data:`` URL); the service
never accepts file paths or URLs. Unknown fields are rejected, so a typo is an error rather than
a silently ignored option.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arrpo.rewards import check_reward_parameters
from arrpo.rubric import Rubric
from arrpo.schema import Task, Verdict
from arrpo.vocab import OnBadVerdict, OrderPolicy, RewardPreset

RubricMode = Literal["auto", "task", "prompt", "none"]

_IMAGE_DOC = "Image bytes (PNG, JPEG, WebP, ...) as base64 text, optionally as a data: URL."


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="T2I prompt or editing instruction.")
    source: str | None = Field(None, description="Source image for edits. " + _IMAGE_DOC)
    task: Task | None = Field(None, description="'t2i' or 'edit'; default: 'edit' when a source is given.")
    order: OrderPolicy | None = Field(None, description="Order policy; default: the server's.")
    rubric: RubricMode = Field(
        "auto",
        description="'auto': the task rubric if the server has one, else none; 'task': the server's "
        "rubric for the task; 'prompt': a rubric written for this prompt (generated once, cached); "
        "'none': the direct judge.",
    )
    rubric_inline: Rubric | None = Field(
        None, description="A Theme-Tips rubric object to use instead (overrides 'rubric')."
    )
    id: str | None = Field(None, max_length=256, description="Caller's identifier, echoed back.")


class CompareRequest(_Request):
    """Judge one pair of candidate images."""

    image_a: str = Field(description="Candidate A. " + _IMAGE_DOC)
    image_b: str = Field(description="Candidate B. " + _IMAGE_DOC)


class GroupRewardsRequest(_Request):
    """Rewards for a group of N candidates of one prompt (all pairs are judged)."""

    images: list[str] = Field(min_length=2, description="The N candidates. " + _IMAGE_DOC)
    preset: RewardPreset = Field("official", description="Reward preset (see arrpo.rewards).")
    win: float = Field(1.0, description="Winner reward λ of the 'official' preset (finite).")
    lose: float = Field(
        0.1, description="Loser penalty γ of the 'official' preset: the loser gets −lose (finite; win + lose > 0).",
    )
    scale: float = Field(1.0, description="c of the 'symmetric' preset (finite, > 0).")
    on_bad_verdict: OnBadVerdict = Field(
        "mask_group", description="A tie/invalid pair masks the whole group, or only that pair."
    )

    @model_validator(mode="after")
    def _winner_above_loser(self) -> GroupRewardsRequest:
        # the same rule as the RL config and arrpo.rewards.group_rewards (a ValueError: a 422 here)
        check_reward_parameters(win=self.win, lose=self.lose, scale=self.scale)
        return self


class RubricInfo(BaseModel):
    """Which rubric conditioned the judge."""

    mode: Literal["task", "prompt", "inline", "none"]
    sha256: str | None = Field(None, description="Hash of the rendered rubric text.")
    cached: bool | None = Field(None, description="For prompt rubrics: served from the cache.")


class CompareResponse(BaseModel):
    id: str | None = None
    verdict: Verdict
    rubric: RubricInfo


class PairVerdict(BaseModel):
    """The verdict on images ``i`` (shown as A) and ``j`` (shown as B)."""

    i: int
    j: int
    verdict: Verdict


class GroupRewardsResponse(BaseModel):
    id: str | None = None
    preset: RewardPreset
    rewards: list[float] = Field(description="Per-image reward, in input order.")
    advantages: list[float] = Field(description="Per-image advantage (equals reward except zscore).")
    mask: list[bool] = Field(description="False: this image carries no training signal.")
    win_rates: list[float]
    masked: bool = Field(description="True when the whole group carries no signal.")
    n_pairs: int
    n_valid: int
    n_tie: int
    n_invalid: int
    notes: list[str] = Field(default_factory=list)
    pairs: list[PairVerdict]
    rubric: RubricInfo
    ocr_scores: list[float | None] | None = Field(
        None, description="With OCR evidence (judge evidence: [ocr]): each image's OCR score, in input order, for "
        "hosts that combine rewards per sample: 1 - normalised edit distance to the requested text; null: no "
        "signal (no text asked for, or the image unreadable), to be masked, never read as 0. Absent otherwise.",
    )


class ErrorBody(BaseModel):
    status: int
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What was wrong and what to do.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ServiceLimits(BaseModel):
    """What one request may hold (the ``arrpo serve`` limits); clients size their requests by it."""

    max_images: int = Field(description="Most images in one group_rewards request (--max-images).")
    max_body_bytes: int = Field(description="Largest request body in bytes (--max-body-mb); larger: 413.")
    max_image_pixels: int = Field(description="Largest decoded image, width × height; larger: 413.")
    max_prompt_chars: int = Field(description="Longest prompt accepted; longer: 422.")


#: The service's default limits; a client assumes them for a service too old to report its own.
DEFAULT_LIMITS = ServiceLimits(
    max_images=16, max_body_bytes=32 * 1024 * 1024, max_image_pixels=4096 * 4096, max_prompt_chars=8000,
)


class Health(BaseModel):
    status: Literal["ok", "draining"]
    version: str
    model: str
    in_flight: int
    capacity: int
    task_rubrics: list[str]
    prompt_rubrics: bool
    limits: ServiceLimits | None = Field(
        None, description="The request limits (absent from services older than this field).",
    )
