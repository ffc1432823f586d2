"""Prove RPO and the in-process judge at real size: time each phase and its peak memory.

Three parts, each with random weights built from the real configs (``gpu_proof_sizes.py``; nothing
is downloaded, the tokenizers are small in-memory stand-ins):

* ``flux`` — RPO iterations of FLUX.1-dev (transformer, VAE, CLIP-L and T5-XXL), 512², 8 SDE
  steps, group of 2, LoRA r16 — the ``official-flux`` preset, through arrpo's own policy, trainer,
  rollout, loss and optimizer code (``RPOTrainer.rollout_batch`` / ``submit`` / ``train_batch``).
* ``qwen-edit`` — the same for Qwen-Image-Edit (transformer, VAE, Qwen2.5-VL-7B prompt encoder with
  the source image), 10 steps, LoRA r32 (``official-qwen-edit``).
* ``judge`` — a Qwen3-VL-8B-size model behind arrpo's in-process transformers backend judging two
  1024² images with the real judge prompt and a rubric: prefill, then a fixed number of new tokens
  (random weights answer garbage, so the verdict is invalid by design; what is timed is the work).

The judge inside the RPO iterations is a stand-in that always prefers the first image, so every
sample is trained; the VLM's cost is the ``judge`` part. Phases are timed with a device
synchronisation at each boundary, and ``torch.cuda.max_memory_allocated`` is reset at each, so a
phase's peak is its own. The first iteration warms up kernels; the table shows the last.

    python benchmarks/gpu_proof.py --dry-run                  # sizes, memory and time plan; allocates nothing
    PYTHONUNBUFFERED=1 python benchmarks/gpu_proof.py --out gpu_proof.json --budget-s 420
    python benchmarks/gpu_proof.py --tiny --out /tmp/p.json   # the same code at tiny sizes (CPU, seconds)

``--budget-s`` stops between phases once the budget is spent (and interrupts a phase that runs
past it); the JSON is rewritten after every phase, so whatever was measured is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_proof_sizes import SCALES

#: The parts, in the order they run: the longest last, so a spent budget costs the least.
PARTS = ("flux", "judge", "qwen-edit")
REPO = Path(__file__).resolve().parents[1]
RUBRIC = REPO / "examples" / "eval" / "rubrics" / "t2i.json"
GIB = 2**30


class BudgetExceeded(BaseException):
    """The time budget is spent (a BaseException, so no ``except Exception`` in the code under
    test swallows it)."""


# ------------------------------------------------------------------------------------ timing
@dataclass
class PhaseClock:
    """Seconds and peak device memory per phase; phases nest (an inner phase pauses the outer one).

    Every boundary synchronises the device and resets the peak-memory counter, so a phase's time
    includes its queued kernels and its peak is its own. ``on_close`` is called after each phase.
    """

    cuda: bool
    on_close: Callable[[], None] = lambda: None
    rows: dict[tuple[str, str, int | None], dict[str, Any]] = field(default_factory=dict)
    _stack: list[tuple[str, str, int | None]] = field(default_factory=list)
    _started: float = 0.0

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def _close_segment(self) -> None:
        self._sync()
        seconds = time.perf_counter() - self._started
        row = self.rows[self._stack[-1]]
        row["seconds"] += seconds
        row["segments"] += 1
        if self.cuda:
            import torch

            peak = torch.cuda.max_memory_allocated() / GIB
            row["peak_gib"] = max(row["peak_gib"] or 0.0, peak)
            row["end_gib"] = torch.cuda.memory_allocated() / GIB

    def _open_segment(self) -> None:
        self._sync()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._started = time.perf_counter()

    def push(self, part: str, phase: str, iteration: int | None = None) -> None:
        if self._stack:
            self._close_segment()
        self._stack.append((part, phase, iteration))
        self.rows.setdefault(self._stack[-1], {"seconds": 0.0, "peak_gib": None, "segments": 0, "depth": len(self._stack) - 1})
        self._open_segment()

    def pop(self) -> None:
        self._close_segment()
        self._stack.pop()
        if self._stack:
            self._open_segment()
        self.on_close()

    @contextlib.contextmanager
    def phase(self, part: str, phase: str, iteration: int | None = None) -> Iterator[None]:
        self.push(part, phase, iteration)
        try:
            yield
        finally:
            self.pop()

    def enter(self, phase: str) -> None:
        """Start a phase inside the current one, in its part and iteration (end it with :meth:`pop`)."""
        part, _, iteration = self._stack[-1]
        self.push(part, phase, iteration)

    @contextlib.contextmanager
    def nested(self, phase: str) -> Iterator[None]:
        self.enter(phase)
        try:
            yield
        finally:
            self.pop()

    def wrap(self, fn: Callable, phase: str) -> Callable:
        """``fn`` timed as a phase nested in whatever phase calls it."""

        def timed(*args, **kwargs):
            with self.nested(phase):
                return fn(*args, **kwargs)

        return timed

    def close_all(self) -> None:
        """End every open phase (one a failed part left open, e.g. an optimizer step that raised
        between its two hooks), so the next part's phases are not nested in it."""
        while self._stack:
            self.pop()

    def table(self) -> list[dict[str, Any]]:
        return [{"part": p, "phase": ph, "iteration": it, **v} for (p, ph, it), v in self.rows.items()]


@dataclass
class Deadline:
    """The ``--budget-s`` guard: :meth:`check` before each unit of work, and an alarm that
    interrupts a phase still running when the budget is spent."""

    budget_s: float
    start: float = field(default_factory=time.monotonic)

    def check(self, what: str) -> None:
        if time.monotonic() - self.start > self.budget_s:
            raise BudgetExceeded(f"budget of {self.budget_s:.0f}s spent before {what}")

    def arm(self) -> None:
        if hasattr(signal, "SIGALRM"):

            def ring(signum, frame):
                raise BudgetExceeded(f"budget of {self.budget_s:.0f}s spent during a phase")

            signal.signal(signal.SIGALRM, ring)
            signal.alarm(max(1, int(self.budget_s - (time.monotonic() - self.start))))

    def disarm(self) -> None:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)


@contextlib.contextmanager
def created_on(device, dtype) -> Iterator[None]:
    """Modules created inside are allocated on ``device`` in ``dtype`` (torch's default device and
    dtype), the way ``from_pretrained(dtype=...)`` creates them: 20 B parameters in seconds."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def count(n: float) -> str:
    """``11.90 B``, ``18.9 M``, ``2.3 k`` parameters."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if unit == "B" else f"{n / size:.1f} {unit}"
    return f"{n:.0f}"


# ------------------------------------------------------------------------------ the RPO parts
@dataclass(frozen=True)
class RPOPart:
    """One generator family of the proof: its preset, prompt and how to build its pipeline."""

    family: str
    preset: str
    prompt: str
    build: Callable[[dict | None], Any]
    max_sequence_length: Callable[[dict], int | None]


def _build_flux(sizes: dict | None):
    from arrpo.rl.tiny import build_tiny_pipeline

    return build_tiny_pipeline("flux", sizes=sizes)


def _build_qwen_edit(sizes: dict | None):
    from arrpo.testing.tiny_qwen import build_tiny_qwen_image

    return build_tiny_qwen_image(edit=True, sizes=sizes)


RPO_PARTS = {
    "flux": RPOPart("flux", "official-flux", "a red apple on a wooden table", _build_flux,
                    lambda scale: scale["flux_max_sequence_length"]),
    "qwen-edit": RPOPart("qwen-image-edit", "official-qwen-edit", "make the sky purple and add a moon",
                         _build_qwen_edit, lambda scale: None),  # the preset's 1024
}  # fmt: skip


def build_policy(part: RPOPart, sizes: dict | None, cfg, device, dtype):
    """The family's pipeline with random weights, created on ``device`` in ``dtype`` (every
    parameter in ``dtype``; the text encoders' rotary frequencies stay float32, as their
    ``from_pretrained(dtype=...)`` leaves them), wrapped in arrpo's policy adapter with the
    config's image size, text length and guidance."""
    from arrpo.rl.policies import FAMILIES

    with created_on(device, dtype):
        pipe = part.build(sizes)
    pipe.set_progress_bar_config(disable=True)
    m = cfg.model
    adapter = FAMILIES[part.family][0]
    return adapter(pipe, height=m.height, width=m.width, max_sequence_length=m.max_sequence_length, guidance=m.guidance)


def rpo_config(part: RPOPart, scale: dict, output_dir: str):
    """The family's official preset, unchanged except what a random-weights proof cannot have
    (a checkpoint path, a prompt file, logging) and the image size of the scale."""
    from arrpo.rl.config import build_config

    model: dict[str, Any] = {"pretrained": "(random weights: benchmarks/gpu_proof.py)",
                             "height": scale["resolution"], "width": scale["resolution"]}  # fmt: skip
    length = part.max_sequence_length(scale)
    if length is not None:
        model["max_sequence_length"] = length
    return build_config({
        "model": model,
        "train": {"overlap": False, "output_dir": output_dir, "resume": None, "checkpoint_every": 0,
                  "gallery_every": 0, "eval_every": 0, "tensorboard": False},
    }, preset=part.preset)  # fmt: skip


class FirstImageWins:
    """The stand-in judge of the RPO parts: always ``A``, so no group is masked and every sample
    is replayed (the VLM's cost is measured in the ``judge`` part)."""

    async def judge(self, comparison):
        from arrpo.schema import Verdict

        return Verdict(id=comparison.id, winner="A", reason="stand-in judge of benchmarks/gpu_proof.py")


def _source_image(path: Path, size: int) -> str:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def run_rpo_part(name: str, ctx: Proof) -> None:
    """Build, set up and run ``ctx.iterations`` RPO iterations of one family, phase by phase.

    Phases: build, setup (RPOTrainer: LoRA, gradient checkpointing, AdamW), then per iteration
    rollout (with encode and decode nested), the stand-in judge, and replay + backward (with the
    optimizer step nested, through AdamW's step hooks).
    """
    import torch
    from accelerate import Accelerator

    from arrpo.rl.data import PromptItem
    from arrpo.rl.trainer import RPOTrainer

    part, clock, scale = RPO_PARTS[name], ctx.clock, ctx.scale
    with tempfile.TemporaryDirectory() as tmp:
        cfg = rpo_config(part, scale, f"{tmp}/run")
        source = _source_image(Path(tmp) / "source.png", scale["resolution"]) if name == "qwen-edit" else None
        ctx.deadline.check(f"{name}: build")
        with clock.phase(name, "build"):
            policy = build_policy(part, scale[name], cfg, ctx.device, ctx.dtype)
        info = ctx.part_info(name)
        info["params"] = {k: param_count(v) for k, v in policy.pipe.components.items() if isinstance(v, torch.nn.Module)}
        info["settings"] = {"preset": part.preset, "resolution": cfg.model.height, "steps": cfg.sampling.num_steps,
                            "group": cfg.sampling.group_size, "lora_rank": cfg.lora.rank,
                            "gradient_checkpointing": cfg.model.gradient_checkpointing,
                            "beta": cfg.objective.beta, "accumulate_samples": cfg.optim.accumulate_samples}  # fmt: skip
        with clock.phase(name, "setup (LoRA, checkpointing, AdamW)"):
            trainer = RPOTrainer(cfg, policy=policy, judge=FirstImageWins(), prompts=[PromptItem(part.prompt, source)],
                                 accelerator=Accelerator(cpu=ctx.device.type == "cpu"))  # fmt: skip
        info["params"]["lora"] = sum(p.numel() for p in trainer.params)
        try:
            _instrument(trainer, clock)
            for it in range(1, ctx.iterations + 1):
                ctx.deadline.check(f"{name}: iteration {it}")
                info.setdefault("iterations", []).append(_rpo_iteration(trainer, clock, name, it))
        finally:
            trainer.close()


def _instrument(trainer, clock: PhaseClock) -> None:
    """Nest encode and decode in the rollout and the optimizer step in the replay phase (timing
    wrappers around the policy's methods and AdamW's step hooks; the code timed is unchanged)."""
    policy = trainer.policy
    policy.encode = clock.wrap(policy.encode, "encode (text encoders, source image)")
    policy.decode = clock.wrap(policy.decode, "decode (VAE)")
    trainer.optimizer.register_step_pre_hook(lambda *_: clock.enter("optimizer step (AdamW)"))
    trainer.optimizer.register_step_post_hook(lambda *_: clock.pop())


def _rpo_iteration(trainer, clock: PhaseClock, name: str, it: int) -> dict[str, Any]:
    """One iteration through the trainer's own steps; returns its metrics and consistency checks."""
    items = trainer.stream.next(trainer.cfg.train.prompts_per_iteration, 0, 1)
    with clock.phase(name, "rollout (SDE sampling, no grad)", it):
        batch = trainer.rollout_batch(items)
    with clock.phase(name, "judge (stand-in)", it):
        trainer.submit(batch)
        verdicts = batch.future.result()
    with clock.phase(name, "replay + backward (trained steps)", it):
        metrics = trainer.train_batch(batch, verdicts)
    keep = ("loss", "kl", "ratio_min", "ratio_max", "grad_norm", "trained_fraction", "optimizer_steps", "skipped_updates")
    return {"iteration": it, **{k: metrics.get(k) for k in keep}}


# ----------------------------------------------------------------------------- the judge part
PREFILL = "prefill + 1 new token (with preprocessing)"


def run_judge_part(ctx: Proof) -> None:
    """A Qwen3-VL(-8B) behind ``TransformersBackend`` judging two square images with the real judge
    prompt and a rubric: warm-up, prefill (+1 token), prefill + ``judge_new_tokens`` (their
    difference is decoding), preprocessing alone, and the whole ``PairwiseJudge`` call."""
    import numpy as np
    from PIL import Image

    from arrpo.images import load_image
    from arrpo.judge import PairwiseJudge
    from arrpo.rubric import Rubric
    from arrpo.schema import Comparison
    from arrpo.testing.tiny_qwen import qwen3_vl_processor, random_qwen3_vl, tiny_qwen_tokenizer
    from arrpo.vlm.transformers_local import TransformersBackend

    clock, scale, spec = ctx.clock, ctx.scale, ctx.scale["judge"] or {}
    ctx.deadline.check("judge: build")
    with clock.phase("judge", "build"):
        tokenizer = tiny_qwen_tokenizer()
        with created_on(ctx.device, ctx.dtype):
            model = random_qwen3_vl(tokenizer, text=spec.get("text"), vision=spec.get("vision"))
        low, high = spec.get("image_tokens", (1, 64))
        processor = qwen3_vl_processor(tokenizer, min_image_tokens=low, max_image_tokens=high)
        backend = TransformersBackend.from_loaded(model, processor, name="random-weights Qwen3-VL")
    info = ctx.part_info("judge")
    info["params"] = {"model": param_count(model)}
    new_tokens, side = scale["judge_new_tokens"], scale["judge_image"]
    judge = PairwiseJudge(backend, order="given", parse_retries=0, max_tokens=new_tokens)
    rng = np.random.default_rng(1)
    images = [load_image(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype="uint8"))) for _ in range(2)]
    comparison = Comparison(task="t2i", prompt="a red bicycle leaning on a brick wall", image_a=images[0],
                            image_b=images[1], rubric=Rubric.load(RUBRIC), id="gpu-proof")  # fmt: skip
    request = judge.build_request(comparison, "AB")
    decoded = f"prefill + {new_tokens} new tokens"
    answers = {}
    for label, tokens in ((f"warm-up ({new_tokens} new tokens)", new_tokens), (PREFILL, 1), (decoded, new_tokens)):
        ctx.deadline.check(f"judge: {label}")
        with clock.phase("judge", label):
            answers[label] = _expect_answer(backend.generate([replace(request, max_tokens=tokens)])[0], label)
    with clock.phase("judge", "preprocess (chat template, processor)"):
        inputs = backend.prepare_inputs([request])
    grids = inputs["image_grid_thw"].tolist()
    merge = processor.image_processor.merge_size ** 2
    ctx.deadline.check("judge: answer")
    with clock.phase("judge", f"judge one pair ({new_tokens} new tokens)"):
        verdict = judge.judge_sync(comparison)
    answer = verdict.answers[0]
    if answer.backend_failed:
        raise RuntimeError(f"the backend failed while judging: {answer.invalid_reason}")
    generated = answers[decoded].usage.completion_tokens
    info["settings"] = {"image_px": side, "image_tokens": [t * h * w // merge for t, h, w in grids],
                        "prompt_tokens": int(inputs["input_ids"].shape[1]), "new_tokens_asked": new_tokens,
                        "new_tokens_generated": generated, "judge_new_tokens": verdict.usage.completion_tokens,
                        "verdict": verdict.winner}  # fmt: skip
    seconds = {phase: row["seconds"] for (part, phase, _), row in clock.rows.items() if part == "judge"}
    if generated > 1:  # both calls prefill the same prompt: the difference is decoding
        info["settings"]["decode_s_per_new_token"] = (seconds[decoded] - seconds[PREFILL]) / (generated - 1)


def _expect_answer(response, label: str):
    if response.usage.completion_tokens < 1:
        raise RuntimeError(f"{label}: the model generated no token")
    return response


# ------------------------------------------------------------------------------- the plan
def plan(ctx: Proof) -> list[dict[str, Any]]:
    """Parameter counts (models built on the meta device: nothing allocated) and a rough memory and
    FLOP plan for each part. Memory: bf16 weights + LoRA (fp32 weight, grad, two AdamW moments) +
    activations of the checkpointed replay (block inputs + one block's working set, rough)."""
    import torch

    from arrpo.rl.policies import ATTENTION_TARGETS

    rows = []
    for name in ctx.parts:
        with tempfile.TemporaryDirectory() as tmp, created_on("meta", ctx.dtype):
            if name == "judge":
                from arrpo.testing.tiny_qwen import random_qwen3_vl, tiny_qwen_tokenizer

                spec = ctx.scale["judge"] or {}
                model = random_qwen3_vl(tiny_qwen_tokenizer(), text=spec.get("text"), vision=spec.get("vision"))
                rows.append(_judge_plan(model, ctx.scale))
                continue
            part = RPO_PARTS[name]
            cfg = rpo_config(part, ctx.scale, tmp)
            pipe = part.build(ctx.scale[name])
        modules = {k: v for k, v in pipe.components.items() if isinstance(v, torch.nn.Module)}
        lora = _lora_params(pipe.transformer, ATTENTION_TARGETS, cfg.lora.rank)
        rows.append(_rpo_plan(name, cfg, modules, lora, pipe.vae_scale_factor))
    return rows


def _lora_params(transformer, targets: list[str], rank: int) -> int:
    """Parameters peft adds for LoRA of ``rank`` on the Linear layers named by ``targets``."""
    import torch

    total = 0
    for module_name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and any(module_name == t or module_name.endswith("." + t) for t in targets):
            total += rank * (module.in_features + module.out_features)
    return total


def _rpo_plan(name: str, cfg, modules: dict, lora: int, vae_scale_factor: int) -> dict[str, Any]:
    t = modules["transformer"].config
    width = t.num_attention_heads * t.attention_head_dim
    blocks = t.get("num_layers", 0) + t.get("num_single_layers", 0)
    res, batch = cfg.model.height, cfg.optim.micro_batch
    image = (res // (2 * vae_scale_factor)) ** 2 * (2 if name == "qwen-edit" else 1)  # 2×2-packed latents (+ the source's)
    # FLUX: T5 pads to the text length; Qwen-Edit: the source image's 28-px tokens and the prompt.
    text = cfg.model.max_sequence_length if name == "flux" else max(4, (res // 28) ** 2) + 32
    tokens = image + text
    params = {k: param_count(v) for k, v in modules.items()}
    forward = 2 * params["transformer"] * batch * tokens + 4 * batch * tokens**2 * width * blocks
    steps, trained = cfg.sampling.num_steps, cfg.sampling.num_steps - 1
    passes = 5 if cfg.objective.beta > 0 else 4  # forward, reference forward, recompute, 2× backward
    activations = blocks * batch * tokens * width * 2 + 24 * batch * tokens * width * 2
    return {
        "part": name, "params": params, "lora_params": lora, "tokens_per_sample": tokens,
        "weights_gib": sum(params.values()) * 2 / GIB, "lora_adam_gib": lora * 16 / GIB,
        "replay_activations_gib": activations / GIB,
        "tflop": {"forward": forward / 1e12, "rollout": steps * forward / 1e12, "replay": trained * passes * forward / 1e12},
    }  # fmt: skip


def _judge_plan(model, scale: dict) -> dict[str, Any]:
    text = model.config.text_config
    image_tokens = max(1, scale["judge_image"] // 32) ** 2
    tokens = 2 * image_tokens + 500  # two images + the judge prompt and a rubric (about; tokenizer-dependent)
    params = param_count(model)
    kv = text.num_hidden_layers * 2 * text.num_key_value_heads * text.head_dim * tokens * 2
    return {
        "part": "judge", "params": {"model": params}, "tokens_per_sample": tokens,
        "weights_gib": params * 2 / GIB, "kv_cache_gib": kv / GIB,
        "tflop": {"prefill": 2 * params * tokens / 1e12},
        "per_new_token_gib_read": params * 2 / GIB,  # decoding reads every weight once per token
    }  # fmt: skip


def print_plan(rows: list[dict[str, Any]], tflops: float, tbps: float) -> None:
    print(f"plan (parameters from the configs; times at an assumed {tflops:.0f} TFLOP/s and {tbps:.1f} TB/s; "
          "memory rough: weights + LoRA/AdamW + replay activations or KV cache)")  # fmt: skip
    for row in rows:
        params = ", ".join(f"{k} {count(v)}" for k, v in row["params"].items())
        memory = row["weights_gib"] + row.get("lora_adam_gib", 0) + row.get("replay_activations_gib", 0) + row.get("kv_cache_gib", 0)
        times = [f"{k} {v:.3g} TFLOP ≈ {v / tflops:.3g} s" for k, v in row["tflop"].items()]
        if "per_new_token_gib_read" in row:
            times.append(f"each new token ≥ {row['per_new_token_gib_read'] * GIB / (tbps * 1e12) * 1e3:.3g} ms (weights read once)")
        print(f"  {row['part']:<9} {params}; LoRA {count(row.get('lora_params', 0))}; {row['tokens_per_sample']} tokens/sample")
        print(f"  {'':<9} ≈ {memory:.3g} GiB at peak (weights {row['weights_gib']:.3g}); {', '.join(times)}")


# -------------------------------------------------------------------------------- the run
@dataclass
class Proof:
    """One run: settings, the clock, the budget and the results written to ``--out``."""

    parts: list[str]
    scale_name: str
    device: Any
    dtype: Any
    iterations: int
    out: Path | None
    deadline: Deadline
    clock: PhaseClock | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> dict[str, Any]:
        return SCALES[self.scale_name]

    def part_info(self, name: str) -> dict[str, Any]:
        return self.results["parts"].setdefault(name, {"status": "running"})

    def write(self) -> None:
        self.results["phases"] = self.clock.table()
        self.results["elapsed_s"] = time.monotonic() - self.deadline.start
        if self.out is not None:
            tmp = self.out.with_name(self.out.name + ".tmp")
            tmp.write_text(json.dumps(self.results, indent=1, default=str), encoding="utf-8")
            tmp.replace(self.out)


def machine(device) -> dict[str, Any]:
    import diffusers
    import peft
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "device": str(device)}  # fmt: skip
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1), cuda=torch.version.cuda)
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def run(ctx: Proof) -> int:
    """Run the parts in order; a part that fails is recorded and the next one runs. Returns the
    exit status: 0 when every part finished, 1 when one failed, 2 when the budget stopped the run."""
    import torch

    status = 0
    ctx.deadline.arm()
    try:  # the alarm may also ring between parts, in the cleanup below
        for name in ctx.parts:
            info = ctx.part_info(name)
            try:
                if name == "judge":
                    run_judge_part(ctx)
                else:
                    run_rpo_part(name, ctx)
                info["status"] = "done"
            except BudgetExceeded as exc:
                info["status"] = f"stopped: {exc}"
                status = 2
                break
            except Exception as exc:  # a failed part (OOM, a library error) must not lose the others
                info["status"] = f"failed: {type(exc).__name__}: {str(exc)[:500]}"
                info["traceback"] = traceback.format_exc()[-4000:]
                print(info["traceback"], file=sys.stderr)
                status = max(status, 1)
            finally:
                ctx.clock.close_all()
                gc.collect()
                if ctx.device.type == "cuda":
                    torch.cuda.empty_cache()
                    info["left_allocated_gib"] = torch.cuda.memory_allocated() / GIB
                ctx.write()
    except BudgetExceeded as exc:
        ctx.results["stopped"] = str(exc)
        status = 2
    finally:
        ctx.deadline.disarm()
    for name in ctx.parts:
        ctx.results["parts"].setdefault(name, {"status": "skipped: budget"})
    ctx.results["complete"] = status == 0
    ctx.write()
    return status


def print_table(ctx: Proof) -> None:
    m = ctx.results["machine"]
    where = m.get("gpu") or m.get("cpu")
    print(f"\nGPU proof, {ctx.scale_name} sizes, random weights, {str(ctx.dtype).removeprefix('torch.')}, "
          f"{where}, torch {m['torch']}, diffusers {m['diffusers']}, transformers {m['transformers']}")  # fmt: skip
    last = {}
    for (part, _, it) in ctx.clock.rows:
        if it is not None:
            last[part] = max(last.get(part, 0), it)
    print(f"{'part':<10} {'phase':<42} {'it':>3} {'seconds':>9} {'peak GiB':>9}")
    for (part, phase, it), row in ctx.clock.rows.items():
        if it is not None and it != last.get(part):
            continue
        peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.1f}"
        label = "  " * row["depth"] + phase
        print(f"{part:<10} {label:<42} {it or '':>3} {row['seconds']:9.2f} {peak:>9}")
    for name, info in ctx.results["parts"].items():
        params = ", ".join(f"{k} {count(v)}" for k, v in info.get("params", {}).items())
        print(f"{name}: {info['status']}; {params}")
        for key in ("settings", "iterations"):
            if key in info:
                print(f"  {key}: {json.dumps(info[key], default=str)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the test suite's, seconds on a CPU)")
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here (rewritten after every phase)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop once this many seconds are spent")
    parser.add_argument("--iterations", type=int, default=2, help="RPO iterations per family (the first warms up)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--dry-run", action="store_true", help="print the plan (parameters, memory, FLOPs); allocate nothing")
    parser.add_argument("--assume-tflops", type=float, default=400.0, help="bf16 matrix rate for the plan's times")
    parser.add_argument("--assume-tbps", type=float, default=4.3, help="memory bandwidth for the plan's decode time")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.manual_seed(0)
    device_name = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if device.index is not None:  # the memory counters read the current device
        torch.cuda.set_device(device.index)
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny models: one intra-op thread is the fastest on a shared CPU
    ctx = Proof(
        parts=[p for p in PARTS if not args.only or p in args.only], scale_name="tiny" if args.tiny else "real",
        device=device, dtype=getattr(torch, args.dtype), iterations=args.iterations, out=args.out,
        deadline=Deadline(args.budget_s),
    )  # fmt: skip
    if args.dry_run:
        print_plan(plan(ctx), args.assume_tflops, args.assume_tbps)
        return 0
    ctx.clock = PhaseClock(cuda=device.type == "cuda", on_close=ctx.write)
    ctx.results = {"scale": ctx.scale_name, "dtype": args.dtype, "args": vars(args), "machine": machine(device), "parts": {}}
    status = run(ctx)
    print_table(ctx)
    return status


if __name__ == "__main__":
    sys.exit(main())
