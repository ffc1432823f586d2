"""The RPO training configuration: one pydantic model per concern, documented fields, presets.

A config file (YAML or JSON) may name a ``preset`` whose values are the base; whatever the file
sets on top overrides it, section by section. Presets:

* ``official-flux`` — the paper's T2I run: FLUX.1-dev, 8 SDE steps (η 0.3, shift 3), λ 1.0 / γ 0.1,
  ε 0.2, β 0.01, LoRA r16 α32 on to_q/to_k/to_v/to_out.0, lr 5e-5, AdamW wd 1e-4, clip 1.0, 512 px.
  Per process 1 prompt × 2 samples per iteration and 4 samples per optimizer step: on 8 GPUs that
  is the paper's batch of 32.
* ``official-qwen-edit`` — the paper's editing run: Qwen-Image-Edit, 10 steps, β 0.02, LoRA r32 α64
  on to_q/to_k/to_v/to_out.0 (as the authors; the text-stream projections add_q/k/v_proj and
  to_add_out are an option, see docs/training.md), lr 1e-5; 2 samples per optimizer step per
  process (16 on 8 GPUs).
* ``tiny-cpu`` — a tiny SD3 pipeline (see :mod:`arrpo.rl.tiny`) at 32 px, for tests and demos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arrpo.judge_settings import JudgeSettings
from arrpo.rewards import check_reward_parameters
from arrpo.tournament import check_rounds_fit
from arrpo.vlm.settings import BackendSettings
from arrpo.vocab import ModelFamily, OnBadVerdict, Pairing, RewardPreset

#: The SDE form of the rollout sampler (:mod:`arrpo.rl.sde`).
SDEKind = Literal["dance", "flow"]
#: The KL estimate of the loss (:mod:`arrpo.rl.loss`).
KLKind = Literal["k1", "gaussian"]
#: Which denoising steps of a trajectory are trained (:mod:`arrpo.rl.loss`).
StepSelection = Literal["all_but_last", "all", "random_fraction", "window"]



class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Section):
    """The generator to train."""

    family: ModelFamily = Field("flux", description="Model family; selects the policy adapter.")
    pretrained: str = Field("black-forest-labs/FLUX.1-dev", description="diffusers pipeline dir or hub id.")
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = Field("bfloat16", description="Base weights dtype (LoRA is fp32).")
    height: int = 512
    width: int = 512
    max_sequence_length: int = Field(512, description="Text tokens for the text encoders.")
    guidance: float | None = Field(3.5, description="Embedded guidance for guidance-distilled models (FLUX-dev).")
    gradient_checkpointing: bool = False


class LoraSection(_Section):
    """LoRA adapter on the transformer (the only trained parameters)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: list[str] | None = Field(None, description="None: the family's default list.")


class SamplingConfig(_Section):
    """SDE rollouts."""

    num_steps: int = Field(8, ge=2, description="Denoising steps per trajectory.")
    shift: float = Field(3.0, description="SD3 time shift of linspace(1, 0).")
    sde: SDEKind = Field("dance", description="'dance' (η form) or 'flow' (noise-level form).")
    eta: float = 0.3
    noise_level: float = 0.7
    group_size: int = Field(2, ge=2, description="Samples per prompt (the paper: 2).")
    same_noise_in_group: bool = Field(True, description="All samples of a prompt start from the same noise.")


class RewardConfig(_Section):
    """From verdicts to advantages (see arrpo.rewards)."""

    preset: RewardPreset = "official"
    win: float = Field(1.0, description="λ: reward of the winner (official); finite, win + lose > 0.")
    lose: float = Field(0.1, description="γ: penalty of the loser (official): the loser gets −lose.")
    scale: float = Field(1.0, description="c of the symmetric preset (finite, > 0).")
    pairing: Pairing = Field(
        "all_pairs",
        description="Which pairs of a group are judged: all_pairs (C(G,2)), random_pairs (G/2, G even) or "
        "tournament (rounds x floor(G/2), judged round by round: arrpo.tournament).",
    )
    tournament_rounds: int | None = Field(
        None, ge=1, description="Rounds of a tournament (default floor(log2 G) + 1, one more for odd G).",
    )
    on_bad_verdict: OnBadVerdict = "mask_group"
    advantage_clip: float | None = 5.0
    reward_image: Literal["predicted_x0", "final_sample"] = Field(
        "predicted_x0",
        description="What the judge sees: the last step's x̂0 prediction (the authors, DanceGRPO) or the "
        "sample after the last SDE step (carries that step's noise, the largest std of the schedule).",
    )

    @model_validator(mode="after")
    def _winner_above_loser(self) -> RewardConfig:
        """The reward service's rule (:func:`arrpo.rewards.check_reward_parameters`), checked when the
        config is read rather than at the first judged batch, after the models are loaded."""
        check_reward_parameters(win=self.win, lose=self.lose, scale=self.scale, clip=self.advantage_clip)
        if self.tournament_rounds is not None and self.pairing != "tournament":
            raise ValueError(f"tournament_rounds applies to pairing 'tournament' only, not {self.pairing!r}")
        return self


class ObjectiveConfig(_Section):
    """PPO-clip + β·KL (see arrpo.rl.loss)."""

    clip_eps: float = 0.2
    beta: float = Field(0.01, description="KL weight to the LoRA-disabled reference; 0 skips the reference pass.")
    kl: KLKind = "k1"
    train_steps: StepSelection = "all_but_last"
    fraction: float = Field(1.0, gt=0, le=1, description="random_fraction: share of the all-but-last steps trained.")
    window: tuple[int, int] | None = None


class OptimConfig(_Section):
    """AdamW, LR schedule, accumulation and clipping."""

    lr: float = 5e-5
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = Field(0, description="Linear warmup in optimizer steps; constant afterwards.")
    max_grad_norm: float | None = 1.0
    accumulate_samples: int = Field(
        4, ge=1, description="Rollout samples per optimizer step per process, counted across iterations."
    )
    micro_batch: int = Field(2, ge=1, description="Samples per forward pass (rollout and replay).")


class JudgeConfig(JudgeSettings):
    """The VLM judge: which backend (``backend``, shared with every other command), which rubric, and
    the :class:`~arrpo.judge_settings.JudgeSettings` at this section's level (``judge.order``,
    ``judge.temperature``, ...), spelled as in every other judge configuration."""

    backend: BackendSettings = Field(
        default_factory=BackendSettings,
        description="Which VLM and how (docs/backends.md): kind, endpoint, model, api_key_env, json_mode, "
        "extra_body, cache, limits. Unset endpoint/model fall back to ARRPO_ENDPOINT/ARRPO_MODEL; with no "
        "endpoint at all the in-process transformers backend is opened.",
    )
    rubric: str | None = Field(None, description="Rubric JSON file; None = direct (rubric-free) judge.")
    prompt_rubrics: bool = Field(
        False, description="Write a zero-shot rubric per prompt (edits: with the source image), asked once per "
        "prompt and cached; replaces `rubric` for every comparison.",
    )
    rubric_cache_dir: str | None = Field(None, description="Folder keeping prompt-level rubrics across runs.")
    builtin: Literal["mean-red", "mean-red-reversed"] | None = Field(
        None, description="A programmatic demo judge instead of a VLM (no backend is opened)."
    )

    @model_validator(mode="after")
    def _evidence_only_writes_no_rubrics(self) -> JudgeConfig:
        if self.evidence_only and self.prompt_rubrics:
            raise ValueError("evidence_only asks no model, so it cannot write prompt rubrics (and reads none): "
                             "remove prompt_rubrics")
        return self

    def judge_settings(self) -> JudgeSettings:
        """The settings of the training judge's :class:`~arrpo.judge.PairwiseJudge`."""
        return JudgeSettings.of(self)


class DataConfig(_Section):
    """Training prompts: a .txt (one prompt a line) or .jsonl ({"prompt", "source"?}) file."""

    prompts: str | None = None
    eval_prompts: str | None = Field(None, description="Held-out prompts for win rate vs. the reference.")


class TrainConfig(_Section):
    """The loop, state and logging."""

    iterations: int = Field(300, description="Rollout → judge → update iterations.")
    prompts_per_iteration: int = Field(1, ge=1, description="Prompts per iteration per process.")
    seed: int = 42
    overlap: bool = Field(True, description="Roll out the next batch while the current one is judged.")
    max_pending: int = Field(1, ge=1, description="Batches judged in the background at most (bounded queue).")
    judge_timeout: float = Field(600.0, description="Seconds to wait for a batch's verdicts; then invalid.")
    output_dir: str = "runs/rpo"
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    resume: str | None = Field("auto", description="'auto' (latest in output_dir), a checkpoint dir, or None.")
    log_every: int = 1
    gallery_every: int = 25
    eval_every: int = Field(0, description="Every N iterations, judge the policy against its reference on "
                            "data.eval_prompts and log eval/win_rate (0 = never).")
    eval_seeds: int = Field(4, ge=1, description="Seeds per held-out prompt in that evaluation.")
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    distributed: Literal["ddp", "fsdp"] = "ddp"
    tensorboard: bool = True
    wandb: bool = False


class RPOConfig(_Section):
    """Everything ``arrpo train`` needs."""

    preset: str | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraSection = Field(default_factory=LoraSection)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check(self) -> RPOConfig:
        per_iter = self.train.prompts_per_iteration * self.sampling.group_size
        if self.optim.micro_batch > per_iter or per_iter % self.optim.micro_batch:
            raise ValueError(
                f"optim.micro_batch ({self.optim.micro_batch}) must divide the samples per iteration "
                f"({per_iter} = prompts_per_iteration × group_size)"
            )
        if self.optim.accumulate_samples % self.optim.micro_batch:
            raise ValueError("optim.accumulate_samples must be a multiple of optim.micro_batch")
        if self.reward.pairing == "random_pairs" and self.sampling.group_size % 2:
            raise ValueError("reward.pairing='random_pairs' needs an even sampling.group_size")
        check_rounds_fit(self.sampling.group_size, self.reward.tournament_rounds)
        return self

    @property
    def samples_per_iteration(self) -> int:
        return self.train.prompts_per_iteration * self.sampling.group_size


PRESETS: dict[str, dict[str, Any]] = {
    "official-flux": {
        "model": {"family": "flux", "pretrained": "black-forest-labs/FLUX.1-dev", "dtype": "bfloat16",
                  "height": 512, "width": 512, "guidance": 3.5, "gradient_checkpointing": True},
        "lora": {"rank": 16, "alpha": 32, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]},
        "sampling": {"num_steps": 8, "shift": 3.0, "sde": "dance", "eta": 0.3, "group_size": 2},
        "reward": {"preset": "official", "win": 1.0, "lose": 0.1},
        "objective": {"clip_eps": 0.2, "beta": 0.01, "kl": "k1"},
        "optim": {"lr": 5e-5, "weight_decay": 1e-4, "max_grad_norm": 1.0, "accumulate_samples": 4, "micro_batch": 2},
        "train": {"iterations": 300, "prompts_per_iteration": 1, "checkpoint_every": 50, "mixed_precision": "bf16"},
    },
    "official-qwen-edit": {
        "model": {"family": "qwen-image-edit", "pretrained": "Qwen/Qwen-Image-Edit", "dtype": "bfloat16",
                  "height": 512, "width": 512, "guidance": None, "max_sequence_length": 1024,
                  "gradient_checkpointing": True},
        "lora": {"rank": 32, "alpha": 64, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]},
        "sampling": {"num_steps": 10, "shift": 3.0, "sde": "dance", "eta": 0.3, "group_size": 2},
        "reward": {"preset": "official", "win": 1.0, "lose": 0.1},
        "objective": {"clip_eps": 0.2, "beta": 0.02, "kl": "k1"},
        "optim": {"lr": 1e-5, "weight_decay": 1e-4, "max_grad_norm": 1.0, "accumulate_samples": 2, "micro_batch": 2},
        "train": {"iterations": 300, "prompts_per_iteration": 1, "checkpoint_every": 50, "mixed_precision": "bf16"},
    },
    "tiny-cpu": {
        "model": {"family": "sd3", "pretrained": "/tmp/arrpo-tiny-sd3", "dtype": "float32", "height": 32,
                  "width": 32, "max_sequence_length": 16, "guidance": None},
        "lora": {"rank": 4, "alpha": 8},
        "sampling": {"num_steps": 4, "shift": 3.0, "eta": 1.0, "group_size": 2},
        "objective": {"clip_eps": 0.2, "beta": 0.0},
        "optim": {"lr": 3e-3, "weight_decay": 0.0, "accumulate_samples": 8, "micro_batch": 2},
        "judge": {"builtin": "mean-red"},
        "train": {"iterations": 40, "prompts_per_iteration": 4, "checkpoint_every": 20, "gallery_every": 10,
                  "output_dir": "runs/tiny", "mixed_precision": "no"},
    },
}  # fmt: skip


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build_config(data: dict[str, Any] | None = None, preset: str | None = None) -> RPOConfig:
    """A config from a preset (``preset`` argument, else ``data["preset"]``) overridden by ``data``."""
    data = dict(data or {})
    name = preset or data.get("preset")
    if name is not None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        data = _merge(PRESETS[name], data)
        data["preset"] = name
    return RPOConfig.model_validate(data)


def load_config(path: str | Path | None = None, preset: str | None = None, overrides: dict[str, Any] | None = None) -> RPOConfig:
    """Read a YAML/JSON config file (optional), apply a preset under it and ``overrides`` on top."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config file must hold a mapping")
    return build_config(_merge(data, overrides or {}), preset)
