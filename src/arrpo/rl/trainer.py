"""The RPO training loop: rollout → (background) judging → advantages → replay + PPO-clip/KL → AdamW.

Overlap: with ``train.overlap`` the next batch is rolled out while the current one is being judged
(at most ``train.max_pending`` batches wait in the judging queue). A batch rolled out before the
latest update is then slightly off-policy; the PPO ratio π_θ/π_old with clipping is exactly the
correction for that. Without overlap every batch is judged before the next rollout.

Accumulation is counted in *rollout samples per process*, across iterations: the optimizer steps
once every ``optim.accumulate_samples`` samples (masked samples count too, so all processes step
together under DDP). Each trained (sample, step) term is scaled by ``1 / (accumulate_samples ·
trained_steps)`` so the update is the mean over the window.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from arrpo.errors import ArrpoError
from arrpo.images import load_image
from arrpo.rewards import group_rewards, plan_pairs
from arrpo.rl.config import RPOConfig
from arrpo.rl.data import PromptItem, PromptStream, read_prompts
from arrpo.rl.judging import BackgroundJudging, TournamentGroup, build_judge, load_rubric
from arrpo.rl.loss import ppo_kl_loss, select_train_steps
from arrpo.rl.policies import (
    DEFAULT_LORA_TARGETS,
    FlowPolicy,
    check_family_dependencies,
    load_policy,
)
from arrpo.rl.policies.base import Conditioning
from arrpo.rl.rollout import SDEParams, Trajectories, replay_step, rollout
from arrpo.rl.sde import gaussian_kl, sigma_schedule
from arrpo.schema import Comparison, Verdict

log = logging.getLogger("arrpo.rl")


@dataclass
class Batch:
    """One iteration's rollouts on this process, group-major (prompt p owns samples p·G … p·G+G−1)."""

    iteration: int
    items: list[PromptItem]
    chunks: list[Trajectories]
    pairs: list[list[tuple[int, int]]]  # tournament: empty until judged (the pairs played)
    images: list[Image.Image] = field(default_factory=list)
    future: object = None
    t_rollout: float = 0.0


class CheckpointError(ArrpoError, ValueError, kind="bad_input"):
    """No checkpoint to resume from could be read."""


def preflight(config: RPOConfig) -> None:
    """Refuse, before minutes of model loading, what would stop the run later: an output folder
    that is a file, and prompt files that are missing, empty or unreadable (``ValueError`` naming
    the file)."""
    out = Path(config.train.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"train.output_dir {out} is a file; give a folder (checkpoints, metrics and final/ go in it)")
    for field_name in ("prompts", "eval_prompts"):
        path = getattr(config.data, field_name)
        if not path:
            continue
        try:
            read_prompts(path)
        except (OSError, ValueError) as exc:
            message = str(exc)
            raise ValueError(message if str(path) in message else f"data.{field_name} {path}: {message}") from None


class RPOTrainer:
    """Runs RPO as configured. ``policy``, ``judge``, ``prompts`` and ``accelerator`` may be injected
    (tests, notebooks); otherwise they are built from the config."""

    def __init__(self, config: RPOConfig, *, policy: FlowPolicy | None = None, judge=None, prompts: list[PromptItem] | None = None, accelerator=None):
        self.cfg = config
        if policy is None:  # a missing module is named before the judge or the generator loads
            check_family_dependencies(config.model.family)
        if accelerator is None:
            from accelerate import Accelerator

            accelerator = Accelerator(mixed_precision=config.train.mixed_precision)
        self.acc = accelerator
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        torch.manual_seed(config.train.seed + self.rank)
        # The judge first: a bad backend setting fails before minutes of loading the generator.
        self.judge = judge if judge is not None else build_judge(config.judge)
        m = config.model
        if policy is None:
            policy = load_policy(
                m.family, m.pretrained, dtype=m.dtype, device=str(accelerator.device), revision=m.revision,
                height=m.height, width=m.width, max_sequence_length=m.max_sequence_length, guidance=m.guidance,
            )  # fmt: skip
        self.policy = policy
        from arrpo.rl.lora import add_lora

        lora = config.lora
        targets = lora.target_modules or DEFAULT_LORA_TARGETS[policy.family or m.family]
        add_lora(policy.transformer, rank=lora.rank, alpha=lora.alpha, target_modules=targets, dropout=lora.dropout)
        if m.gradient_checkpointing:
            policy.transformer.enable_gradient_checkpointing()
        self.params = [p for p in policy.transformer.parameters() if p.requires_grad]
        o = config.optim
        self.optimizer = torch.optim.AdamW(self.params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
        warmup = o.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
        if self.world > 1:
            policy.model = accelerator.prepare_model(policy.transformer)
        self.rubric = load_rubric(config.judge.rubric)
        self.task = "edit" if policy.needs_source else "t2i"
        if prompts is None:
            if not config.data.prompts:
                raise ValueError("data.prompts is required (a .txt or .jsonl file of prompts)")
            prompts = read_prompts(config.data.prompts)
        self.stream = PromptStream(prompts, config.train.seed)
        self.sde = SDEParams(config.sampling.sde, config.sampling.eta, config.sampling.noise_level)
        self.sigmas = sigma_schedule(config.sampling.num_steps, config.sampling.shift).to(policy.device)
        self.generator = torch.Generator(device="cpu").manual_seed(config.train.seed * 7919 + self.rank)
        self.rng = random.Random(config.train.seed * 104729 + self.rank)
        self.iteration = 0  # iterations trained
        self.rolled = 0  # iterations rolled out
        self.samples_seen = 0  # rollout samples fed to the loss (per process)
        self.optimizer_steps = 0
        self.skipped_updates = 0
        self._bad_window = False
        self.pending: deque[Batch] = deque()
        self.output_dir = Path(config.train.output_dir)
        self.judging = BackgroundJudging(self.judge, timeout=config.train.judge_timeout)
        self.sink = None
        self.eval_items = read_prompts(config.data.eval_prompts) if config.data.eval_prompts else None

    # ----------------------------------------------------------------------------- rollout
    def _load_sources(self, items: list[PromptItem]) -> list[Image.Image] | None:
        if not self.policy.needs_source:
            return None
        missing = [it.prompt for it in items if not it.source]
        if missing:
            raise ValueError(f"editing needs a 'source' image for every prompt; missing for {missing[:3]}")
        return [load_image(it.source).to_pil() for it in items]

    def rollout_batch(self, items: list[PromptItem]) -> Batch:
        """Sample ``group_size`` trajectories per prompt with the current policy."""
        start = time.perf_counter()
        g = self.cfg.sampling.group_size
        sources = self._load_sources(items)
        cond = self.policy.encode([it.prompt for it in items], sources).repeat(g)
        n = len(items) * g
        if self.cfg.sampling.same_noise_in_group:
            noise = self.policy.initial_noise(len(items), self.generator).repeat_interleave(g, dim=0)
        else:
            noise = self.policy.initial_noise(n, self.generator)
        mb = self.cfg.optim.micro_batch
        chunks = [
            rollout(self.policy, cond.select(slice(k, k + mb)), noise[k : k + mb], self.sigmas, self.sde, self.generator)
            for k in range(0, n, mb)
        ]
        if self.cfg.reward.pairing == "tournament":  # planned round by round while judging
            pairs: list[list[tuple[int, int]]] = [[] for _ in items]
        else:
            pairs = [plan_pairs(g, self.cfg.reward.pairing, self.rng) for _ in items]
        batch = Batch(self.rolled, items, chunks, pairs)
        self.rolled += 1
        self._decode(batch)
        batch.t_rollout = time.perf_counter() - start
        return batch

    def _decode(self, batch: Batch) -> None:
        which = self.cfg.reward.reward_image
        batch.images = [image for c in batch.chunks for image in self.policy.decode(c.final_latents(which))]

    def _comparison(self, batch: Batch, p: int, source, i: int, j: int, id: str) -> Comparison:
        g = self.cfg.sampling.group_size
        return Comparison(
            task=self.task, prompt=batch.items[p].prompt, image_a=load_image(batch.images[p * g + i]),
            image_b=load_image(batch.images[p * g + j]), source=source, rubric=self.rubric, id=id,
        )  # fmt: skip

    def submit(self, batch: Batch) -> None:
        """Start judging every planned pair of the batch (a tournament: every group's rounds) in the background."""
        sources = [load_image(item.source) if self.policy.needs_source else None for item in batch.items]
        name = f"it{batch.iteration}-r{self.rank}"
        if self.cfg.reward.pairing == "tournament":
            r, g = self.cfg.reward, self.cfg.sampling.group_size
            groups = [
                TournamentGroup(
                    g, seed=f"{self.cfg.train.seed}:{batch.iteration}:{self.rank}:{p}", name=f"{name}-p{p}",
                    comparison=lambda i, j, id, p=p: self._comparison(batch, p, sources[p], i, j, id),
                    rounds=r.tournament_rounds, on_bad_verdict=r.on_bad_verdict,
                )
                for p in range(len(batch.items))
            ]  # fmt: skip
            batch.future = self.judging.submit_tournaments(groups)
            return
        batch.future = self.judging.submit([
            self._comparison(batch, p, sources[p], i, j, f"{name}-p{p}-{i}v{j}")
            for p, pairs in enumerate(batch.pairs) for i, j in pairs
        ])

    def _verdicts(self, batch: Batch) -> list[Verdict]:
        """The batch's verdicts, group-major (never raises: failed comparisons come back as failed
        verdicts); a tournament's played pairs are recorded in ``batch.pairs``."""
        answer = batch.future.result()
        if self.cfg.reward.pairing != "tournament":
            return answer
        batch.pairs = [played.pairs for played in answer]
        return [v for played in answer for v in played.verdicts]

    # ----------------------------------------------------------------------------- update
    def advantages(self, batch: Batch, verdicts: list[Verdict]):
        """Per-sample advantages and loss mask of a batch, plus verdict statistics."""
        r = self.cfg.reward
        outcomes, k = [], 0
        for pairs in batch.pairs:
            winners = [v.winner for v in verdicts[k : k + len(pairs)]]
            k += len(pairs)
            outcomes.append(group_rewards(
                self.cfg.sampling.group_size, pairs, winners, preset=r.preset, win=r.win, lose=r.lose,
                scale=r.scale, on_bad_verdict=r.on_bad_verdict, clip=r.advantage_clip, pairing=r.pairing,
            ))  # fmt: skip
        adv = torch.tensor([a for o in outcomes for a in o.advantages], dtype=torch.float32)
        mask = torch.tensor([m for o in outcomes for m in o.mask], dtype=torch.float32)
        return adv, mask, outcomes

    def _no_sync(self, sync: bool):
        if sync or self.world == 1:
            return contextlib.nullcontext()
        return self.acc.no_sync(self.policy.model)

    def train_batch(self, batch: Batch, verdicts: list[Verdict]) -> dict[str, float]:
        """Replay the batch's trained steps, accumulate gradients, step when the window is full."""
        cfg, obj = self.cfg, self.cfg.objective
        adv, mask, outcomes = self.advantages(batch, verdicts)
        stats: dict[str, list[float]] = {"loss": [], "kl": [], "ratio": [], "clip": [], "policy": []}
        t_train = t_optim = 0.0
        grad_norm = None
        mb, acc = cfg.optim.micro_batch, cfg.optim.accumulate_samples
        for c, chunk in enumerate(batch.chunks):
            start = time.perf_counter()
            rows = slice(c * mb, (c + 1) * mb)
            a, m = adv[rows].to(self.policy.device), mask[rows].to(self.policy.device)
            sync = (self.samples_seen + mb) % acc == 0
            steps = select_train_steps(chunk.num_steps, obj.train_steps, fraction=obj.fraction, window=obj.window, rng=self.rng)
            if m.sum() > 0 or (sync and self.world > 1):
                weight = m / (acc * len(steps))
                for n, t in enumerate(steps):
                    with self._no_sync(sync and n == len(steps) - 1):
                        new = replay_step(self.policy, chunk, t, self.sde)
                        kl = torch.zeros_like(new.log_prob)
                        if obj.beta > 0:
                            with torch.no_grad(), self.policy.reference():
                                ref = replay_step(self.policy, chunk, t, self.sde)
                            kl = new.log_prob - ref.log_prob if obj.kl == "k1" else gaussian_kl(new.mean, ref.mean, new.std)
                        terms = ppo_kl_loss(new.log_prob, chunk.log_probs[:, t], a, kl, clip_eps=obj.clip_eps, beta=obj.beta)
                        loss = (terms.loss * weight).sum()
                        if not torch.isfinite(loss):
                            # Still backward: under DDP every rank must join the gradient all-reduce.
                            # The whole window is skipped, on every rank (see _optimizer_step).
                            self._bad_window = True
                            log.warning("non-finite loss at iteration %d step %d: the update will be skipped", batch.iteration, t)
                        self.acc.backward(loss)
                    sel = m > 0
                    if sel.any():
                        stats["loss"].append(float(terms.loss[sel].detach().mean()))
                        stats["policy"].append(float(terms.policy[sel].detach().mean()))
                        stats["kl"].append(float(terms.kl[sel].detach().mean()))
                        stats["ratio"].extend(terms.ratio[sel].detach().cpu().tolist())
                        stats["clip"].extend(terms.clipped[sel].float().cpu().tolist())
            self.samples_seen += mb
            t_train += time.perf_counter() - start
            if sync:
                start = time.perf_counter()
                grad_norm = self._optimizer_step()
                t_optim += time.perf_counter() - start
        n_pairs = sum(o.n_pairs for o in outcomes)
        ratios = stats["ratio"]
        metrics = {
            "reward_mean": sum(r for o in outcomes for r in o.rewards) / max(1, len(adv)),
            "advantage_mean": float(adv.mean()),
            "tie_rate": sum(o.n_tie for o in outcomes) / n_pairs,
            "invalid_rate": sum(o.n_invalid for o in outcomes) / n_pairs,
            "masked_groups": sum(o.masked for o in outcomes),
            "trained_fraction": float(mask.mean()),
            "loss": _mean(stats["loss"]),
            "policy_loss": _mean(stats["policy"]),
            "kl": _mean(stats["kl"]),
            "clip_fraction": _mean(stats["clip"]),
            "ratio_mean": _mean(ratios),
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "grad_norm": grad_norm,
            "lr": self.scheduler.get_last_lr()[0],
            "optimizer_steps": self.optimizer_steps,
            "skipped_updates": self.skipped_updates,
            "time/rollout": batch.t_rollout,
            "time/replay_backward": t_train,
            "time/optimizer": t_optim,
        }
        return metrics

    def _optimizer_step(self) -> float | None:
        """Unscale (fp16), clip, check finiteness, step AdamW and the LR schedule, zero the gradients."""
        max_norm = self.cfg.optim.max_grad_norm or float("inf")
        scaler = getattr(self.acc, "scaler", None)  # fp16: accelerate scaled the loss in backward
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        bad = self._bad_window
        if self.world > 1:  # one rank's non-finite loss skips the update everywhere, or replicas diverge
            flag = torch.tensor(float(bad), device=self.acc.device)
            bad = bool(self.acc.reduce(flag, reduction="sum") > 0)
        if bad or not torch.isfinite(norm):
            self.skipped_updates += 1
            log.warning("non-finite loss or gradient (norm %s): update skipped (%d so far)", float(norm), self.skipped_updates)
            self.optimizer.zero_grad(set_to_none=True)
            self._bad_window = False
            if scaler is not None:
                scaler.update()
            return None
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer_steps += 1
        return float(norm)

    # ----------------------------------------------------------------------------- loop
    def step(self) -> dict[str, float]:
        """One iteration: keep the judging queue full, then train the oldest judged batch."""
        t = self.cfg.train
        depth = t.max_pending if t.overlap else 0
        while len(self.pending) <= depth and self.rolled < t.iterations:
            items = self.stream.next(t.prompts_per_iteration, self.rank, self.world)
            batch = self.rollout_batch(items)
            self.submit(batch)
            self.pending.append(batch)
        batch = self.pending.popleft()
        start = time.perf_counter()
        verdicts = self._verdicts(batch)
        wait = time.perf_counter() - start
        metrics = self.train_batch(batch, verdicts)
        metrics["time/judge_wait"] = wait
        self.iteration += 1
        self._after_step(batch, verdicts, metrics)
        return metrics

    def _after_step(self, batch: Batch, verdicts: list[Verdict], metrics: dict[str, float]) -> None:
        t = self.cfg.train
        if not self.acc.is_main_process:
            if t.checkpoint_every and self.iteration % t.checkpoint_every == 0:
                self.save_checkpoint()
            return
        if self.eval_items and t.eval_every and self.iteration % t.eval_every == 0 and self._can_evaluate():
            metrics.update({f"eval/{k}": float(v) for k, v in self.evaluate().items()})
        if self.sink is not None and self.iteration % t.log_every == 0:
            self.sink.log(self.iteration, {k: v for k, v in metrics.items() if v is not None})
        if self.sink is not None and t.gallery_every and self.iteration % t.gallery_every == 0:
            from arrpo.rl.metrics import save_gallery

            winners = [v.winner for v in verdicts]
            caps = [f"{it.prompt} | verdicts {winners}" for it in batch.items]
            save_gallery(self.output_dir / "gallery" / f"it{self.iteration:06d}.png", batch.images, self.cfg.sampling.group_size, caps)
        if t.checkpoint_every and self.iteration % t.checkpoint_every == 0:
            self.save_checkpoint()

    def _can_evaluate(self) -> bool:
        if self.world > 1 and self.cfg.train.distributed == "fsdp":
            if not getattr(self, "_warned_fsdp_eval", False):
                log.warning("train.eval_every is not supported with FSDP yet (sharded weights); skipped")
                self._warned_fsdp_eval = True
            return False
        return True

    def evaluate(self) -> dict[str, float]:
        """Win rate of the current policy against its reference (LoRA off) on the held-out
        prompts, ``train.eval_seeds`` seeds each, same noise for both, ODE sampling."""
        from arrpo.rl.evaluate import head_to_head

        items = self.eval_items or []
        seeds = [self.cfg.train.seed + 1_000_003 + s for s in range(self.cfg.train.eval_seeds)]
        prompts = [it for it in items for _ in seeds]
        sources = self._load_sources(prompts)
        with self.policy.unwrapped():  # the main process samples alone: no DDP collectives
            return head_to_head(
                self.policy, self.judge, [it.prompt for it in prompts], seeds * len(items),
                num_steps=self.cfg.sampling.num_steps, shift=self.cfg.sampling.shift, sources=sources,
                task=self.task, rubric=self.rubric,
                judge_all=self.judging.judge_all,
            )

    def train(self) -> list[dict[str, float]]:
        """Run until ``train.iterations``; returns the per-iteration metrics of this process."""
        t = self.cfg.train
        if self.acc.is_main_process and self.sink is None:
            from arrpo.rl.metrics import MetricsSink

            self.sink = MetricsSink(self.output_dir, tensorboard=t.tensorboard, wandb=t.wandb,
                                    config=self.cfg.model_dump(), start_iteration=self.iteration)
        history = []
        while self.iteration < t.iterations:
            history.append(self.step())
            log.info("iteration %d: %s", self.iteration, _fmt(history[-1]))
        return history

    def close(self) -> None:
        self.judging.close()
        if self.sink is not None:
            self.sink.close()

    # ----------------------------------------------------------------------------- state
    def state(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, RNGs, counters, queue."""
        from arrpo.rl.lora import lora_state_dict

        return {
            "lora": lora_state_dict(self.policy.transformer),
            "grads": [None if p.grad is None else p.grad.detach().cpu().clone() for p in self.params],
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "rng": self.rng.getstate(),
            "counters": {
                "iteration": self.iteration, "rolled": self.rolled, "samples_seen": self.samples_seen,
                "optimizer_steps": self.optimizer_steps, "skipped_updates": self.skipped_updates,
                "position": self.stream.position, "bad_window": self._bad_window,
            },
            "pending": [_pack_batch(b) for b in self.pending],
        }

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`; pending batches are decoded and re-submitted to the judge."""
        from arrpo.rl.lora import load_lora_state_dict

        load_lora_state_dict(self.policy.transformer, state["lora"])
        for p, g in zip(self.params, state["grads"], strict=True):
            p.grad = None if g is None else g.to(p.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.setstate(state["rng"])
        c = state["counters"]
        self.iteration, self.rolled, self.samples_seen = c["iteration"], c["rolled"], c["samples_seen"]
        self.optimizer_steps, self.skipped_updates = c["optimizer_steps"], c["skipped_updates"]
        self.stream.position, self._bad_window = c["position"], c["bad_window"]
        self.pending = deque(_unpack_batch(b, self.policy.device) for b in state["pending"])
        for batch in self.pending:
            self._decode(batch)
            self.submit(batch)

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write this process's state to ``output_dir/checkpoints/it<N>/rank<r>.pt`` (and prune old ones);
        the main process adds the config and the adapter in the diffusers LoRA format."""
        path = Path(path) if path else self.output_dir / "checkpoints" / f"it{self.iteration:06d}"
        path.mkdir(parents=True, exist_ok=True)
        target = path / f"rank{self.rank}.pt"
        tmp = target.with_name(target.name + ".tmp")
        torch.save(self.state(), tmp)  # a kill mid-write leaves the .tmp, never a torn checkpoint
        tmp.replace(target)
        if self.acc.is_main_process:
            (path / "config.json").write_text(self.cfg.model_dump_json(indent=1), encoding="utf-8")
            self.export_lora(path)  # loadable with pipe.load_lora_weights(path), like final/
            keep = self.cfg.train.keep_checkpoints
            old = sorted(p for p in path.parent.glob("it*") if p.is_dir())[:-keep] if keep else []
            for stale in old:
                for f in stale.iterdir():
                    f.unlink()
                stale.rmdir()
        return path

    def resume(self, path: str | Path | None = None) -> Path | None:
        """Load a checkpoint dir (``None``: per ``train.resume``; ``auto`` takes the latest)."""
        spec = str(path) if path else self.cfg.train.resume
        if not spec:
            return None
        if spec == "auto":
            found = sorted((self.output_dir / "checkpoints").glob("it*/rank0.pt"))
            if not found:
                return None
            candidates = [f.parent for f in reversed(found)]  # newest first
            if self.world > 1:  # ranks falling back on their own could resume different iterations
                candidates = candidates[:1]
        else:
            candidates = [Path(spec)]
        problems = []
        for directory in candidates:
            try:
                state = torch.load(directory / f"rank{self.rank}.pt", weights_only=False)
            except Exception as exc:  # torn or foreign file: torch raises many kinds
                problems.append(f"{directory}: {type(exc).__name__}: {str(exc)[:200]}")
                log.warning("cannot load checkpoint %s (%s); trying an older one", directory, problems[-1])
                continue
            self.load_state(state)
            log.info("resumed from %s at iteration %d", directory, self.iteration)
            return directory
        raise CheckpointError("no checkpoint could be loaded (" + "; ".join(problems) + "); delete the damaged "
                              "ones or start fresh with --no-resume")

    def export_lora(self, path: str | Path) -> Path:
        """Save the adapter in the diffusers LoRA format into folder ``path`` (returned):
        ``pipe.load_lora_weights(path)`` loads it into a pipeline of the same family."""
        from arrpo.rl.lora import save_diffusers_lora

        save_diffusers_lora(self.policy.pipe, path, transformer=self.policy.transformer)
        return Path(path)


def _pack_batch(b: Batch) -> dict:
    return {
        "iteration": b.iteration, "items": [(i.prompt, i.source) for i in b.items], "pairs": b.pairs,
        "chunks": [(c.latents.cpu(), c.log_probs.cpu(), c.sigmas.cpu(), {k: v.cpu() for k, v in c.cond.tensors.items()},
                    None if c.final_x0 is None else c.final_x0.cpu()) for c in b.chunks],
    }  # fmt: skip


def _unpack_batch(d: dict, device) -> Batch:
    chunks = []
    for lat, lp, sig, cond, x0 in d["chunks"]:
        x0 = x0.to(device) if x0 is not None else None
        chunks.append(Trajectories(lat.to(device), lp.to(device), sig.to(device), Conditioning({k: v.to(device) for k, v in cond.items()}), x0))
    return Batch(d["iteration"], [PromptItem(p, s) for p, s in d["items"]], chunks, d["pairs"])


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt(metrics: dict) -> str:
    keys = ("reward_mean", "loss", "kl", "ratio_mean", "grad_norm", "invalid_rate", "time/judge_wait")
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if metrics.get(k) is not None)
