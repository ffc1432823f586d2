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
from arrpo.tournament import check_rounds_fit
from arrpo.vocab import EndpointState, OnBadVerdict, OrderPolicy, Pairing, RewardPreset

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


class _RewardRequest(_Request):
    """A request whose verdicts are mapped to rewards (the preset and its parameters)."""

    preset: RewardPreset = Field("official", description="Reward preset (see arrpo.rewards).")
    win: float = Field(1.0, description="Winner reward λ of the 'official' preset (finite).")
    lose: float = Field(
        0.1, description="Loser penalty γ of the 'official' preset: the loser gets −lose (finite; win + lose > 0).",
    )
    scale: float = Field(1.0, description="c of the 'symmetric' preset (finite, > 0).")
    on_bad_verdict: OnBadVerdict = Field(
        "mask_group", description="A tie/invalid pair masks the whole group, or only that pair."
    )
    pairing: Pairing | None = Field(
        None, description="Which pairs of the group are judged: 'all_pairs' (C(N,2)), 'random_pairs' (N/2, N "
        "even) or 'tournament' (rounds x floor(N/2), Swiss system; arrpo.tournament); default: the server's "
        "(/health limits.pairing).",
    )
    tournament_rounds: int | None = Field(
        None, ge=1, description="Rounds of a tournament (default: floor(log2 N) + 1, one more for odd N).",
    )
    seed: int | None = Field(
        None, ge=-(2**63), le=2**63 - 1, description="Seed of the random_pairs / tournament plan, mixed with the prompt and id (default 0): "
        "the same request is paired the same way.",
    )

    @model_validator(mode="after")
    def _winner_above_loser(self) -> _RewardRequest:
        # the same rule as the RL config and arrpo.rewards.group_rewards (a ValueError: a 422 here)
        check_reward_parameters(win=self.win, lose=self.lose, scale=self.scale)
        if self.tournament_rounds is not None and self.pairing not in (None, "tournament"):
            raise ValueError(f"tournament_rounds: applies to pairing 'tournament' only, not {self.pairing!r}")
        return self


class GroupRewardsRequest(_RewardRequest):
    """Rewards for a group of N candidates of one prompt (the pairs its ``pairing`` chooses are judged)."""

    images: list[str] = Field(min_length=2, description="The N candidates. " + _IMAGE_DOC)

    @model_validator(mode="after")
    def _pairing_fits(self) -> GroupRewardsRequest:
        if self.pairing == "random_pairs" and len(self.images) % 2:
            raise ValueError(f"pairing: random_pairs needs an even number of images, got {len(self.images)}")
        check_rounds_fit(len(self.images), self.tournament_rounds)
        return self


#: Longest a member may wait for the rest of its group (seconds).
MAX_GATHER_WAIT = 3600.0


class GroupMemberRequest(_RewardRequest):
    """One member of a group that the service assembles from one request per member
    (``/v1/group_member``): every member names the same ``group`` key, ``group_size`` and options;
    the group is judged once when ``group_size`` distinct images are in, and each request is
    answered with its own image's value."""

    group: str = Field(min_length=1, max_length=512, description="The group's key, the same for every member.")
    group_size: int = Field(ge=1, description="Members in the whole group (the trainer's samples per prompt).")
    image: str = Field(description="This member's candidate. " + _IMAGE_DOC)
    anchor: str | None = Field(
        None, description="Judge each member against this image instead of all pairs (the same for every "
        "member; a group of 1 is allowed then). " + _IMAGE_DOC,
    )
    wait: float = Field(
        600.0, gt=0, le=MAX_GATHER_WAIT,
        description="Seconds from the group's first member until it must be complete; then every waiting "
        "member is answered 504 group_incomplete.",
    )

    @model_validator(mode="after")
    def _pairs_need_two(self) -> GroupMemberRequest:
        if self.anchor is None and self.group_size < 2:
            raise ValueError("group_size: a group judged all-pairs needs at least 2 members (or send an anchor)")
        if self.anchor is not None and (self.pairing is not None or self.tournament_rounds is not None):
            raise ValueError("pairing: members judged against an anchor are not paired among themselves; "
                             "send no pairing or tournament_rounds with an anchor")
        if self.anchor is None and self.pairing == "random_pairs" and self.group_size % 2:
            raise ValueError(f"pairing: random_pairs needs an even group_size, got {self.group_size}")
        if self.anchor is None:
            check_rounds_fit(self.group_size, self.tournament_rounds)
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
    pairing: Pairing = Field("all_pairs", description="How the judged pairs were chosen.")
    pairs: list[PairVerdict] = Field(description="The pairs judged (for a tournament: those played, round by round).")
    rubric: RubricInfo
    ocr_scores: list[float | None] | None = Field(
        None, description="With OCR evidence (judge evidence: [ocr]): each image's OCR score, in input order, for "
        "hosts that combine rewards per sample: 1 - normalised edit distance to the requested text; null: no "
        "signal (no text asked for, or the image unreadable), to be masked, never read as 0. Absent otherwise.",
    )


class GroupMemberResponse(BaseModel):
    """One member's value from its judged group (the masked-value rule applied to the group)."""

    group: str
    index: int = Field(description="This member's place in the group (arrival order).")
    group_size: int
    duplicate: bool = Field(description="The image was already a member (a resent or padded copy); its value.")
    reward: float
    advantage: float
    mask: bool = Field(description="False: this member carries no training signal (its value is 0.0).")
    masked: bool = Field(description="True when the whole group carries no signal.")
    cause: str | None = Field(None, description="Why this member is masked, when it is.")
    n_pairs: int
    n_valid: int
    n_tie: int
    n_invalid: int
    notes: list[str] = Field(default_factory=list)


class ErrorBody(BaseModel):
    status: int
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What was wrong and what to do.")


class ErrorResponse(BaseModel):
    error: ErrorBody


def judge_calls(order: str, pairs: int) -> int:
    """The judge calls a request of ``pairs`` pairs costs the service's admission gate (two per
    pair when both orders are asked): what ``/health``'s ``capacity`` and ``in_flight`` count, so a
    client sizes its concurrency by the same arithmetic as the service."""
    return pairs * (2 if order == "both" else 1)


class ServiceLimits(BaseModel):
    """What one request may hold (the ``arrpo serve`` limits); clients size their requests by it."""

    max_images: int = Field(description="Most images in one group_rewards request (--max-images).")
    max_body_bytes: int = Field(description="Largest request body in bytes (--max-body-mb); larger: 413.")
    max_image_pixels: int = Field(description="Largest decoded image, width × height; larger: 413.")
    max_prompt_chars: int = Field(description="Longest prompt accepted; longer: 422.")
    pairing: Pairing = Field(
        "all_pairs", description="The pairing of a group request that names none (--pairing); with order and "
        "group size it gives a group's judge calls (arrpo.tournament.vlm_calls_per_group).",
    )
    order: OrderPolicy = Field(
        "random", description="The order policy of a request that names none (--order); 'both' doubles a "
        "group's judge calls, so a client sizes its in-flight calls by it.",
    )


#: The service's default limits (those of a default :class:`~arrpo.server.config.ServiceConfig`).
DEFAULT_LIMITS = ServiceLimits(
    max_images=16, max_body_bytes=32 * 1024 * 1024, max_image_pixels=4096 * 4096, max_prompt_chars=8000,
)


class EndpointHealth(BaseModel):
    """One VLM endpoint of the service's backend, with its counts since the service started."""

    endpoint: str = Field(description="The endpoint's base URL.")
    state: EndpointState = Field(description="up; cooling (out of rotation after a failure); probing "
                                 "(cooled down: the next request decides whether it is back).")
    in_flight: int
    requests: int = Field(description="Calls sent to it (failed ones included).")
    ok: int = Field(description="Calls it answered.")
    failures: dict[str, int] = Field(description="Failed calls by kind: connect, timeout, server_error, "
                                     "rate_limited, bad_response, rejected (a 4xx: the request's fault), other.")
    cooldowns: int = Field(description="Times it was taken out of rotation.")
    cooling_for_s: float = Field(description="Seconds left of its cooldown (0 when up).")
    mean_latency_s: float | None = Field(description="Mean seconds of its answered calls.")


class Health(BaseModel):
    status: Literal["ok", "draining"]
    version: str
    model: str
    in_flight: int
    capacity: int
    task_rubrics: list[str]
    prompt_rubrics: bool
    limits: ServiceLimits = Field(description="What one request may hold; clients size their requests by it.")
    endpoints: list[EndpointHealth] | None = Field(
        None, description="The VLM endpoints and their counts (absent for an in-process model).",
    )
