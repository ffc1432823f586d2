"""Time one RPO iteration, broken down, and how much judge latency the overlap hides.

CPU mode (default): a tiny random SD3 pipeline, a programmatic judge with a simulated latency per
comparison (0 / 100 / 500 ms), each with and without overlap (rolling out the next batch while the
current one is judged). Prints mean seconds per iteration of rollout, judge wait, replay+backward,
optimizer and wall time, and the fraction of judge latency hidden = 1 − wait(overlap)/wait(serial).

GPU mode (``--gpu``): a real-size FLUX.1-dev transformer built from its config with random bf16
weights (nothing downloaded), LoRA r16, 512 px, 8 SDE steps, group of 2: times rollout and
replay+backward of the trained steps. Text conditioning is random tensors of the real shapes.

    python benchmarks/rpo_step.py                 # CPU table
    python benchmarks/rpo_step.py --gpu           # on a CUDA machine
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

KEYS = ("time/rollout", "time/judge_wait", "time/replay_backward", "time/optimizer")


def cpu_table(iterations: int, latencies: list[float], prompts_per_iteration: int) -> None:
    import torch
    from accelerate import Accelerator

    from arrpo.rl.config import build_config
    from arrpo.rl.data import PromptItem
    from arrpo.rl.judging import ChannelMeanJudge
    from arrpo.rl.tiny import save_tiny_pipeline
    from arrpo.rl.trainer import RPOTrainer

    torch.set_num_threads(1)
    prompts = [PromptItem(p) for p in ("a red apple", "a cat", "mountains", "a robot", "an astronaut")]
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_pipeline("sd3", f"{tmp}/sd3")
        print(f"tiny SD3, 32 px, 4 SDE steps, {prompts_per_iteration} prompts x 2 samples per iteration, "
              f"{iterations} iterations (first one excluded), beta 0.01 (reference pass on)")  # fmt: skip
        header = f"{'latency':>8} {'overlap':>7} | {'rollout':>8} {'judge wait':>10} {'replay+bwd':>10} {'optim':>7} {'wall/it':>8} | hidden"
        print(header)
        print("-" * len(header))
        for latency in latencies:
            waits = {}
            for overlap in (False, True):
                cfg = build_config({
                    "model": {"pretrained": str(path)},
                    "objective": {"beta": 0.01},
                    "optim": {"accumulate_samples": 2 * prompts_per_iteration},
                    "train": {"iterations": iterations + 1, "prompts_per_iteration": prompts_per_iteration,
                              "overlap": overlap, "output_dir": f"{tmp}/run", "resume": None,
                              "tensorboard": False, "checkpoint_every": 0, "gallery_every": 0},
                }, preset="tiny-cpu")  # fmt: skip
                judge = ChannelMeanJudge(latency=latency)
                trainer = RPOTrainer(cfg, judge=judge, prompts=prompts, accelerator=Accelerator(cpu=True))
                trainer.step()  # warm-up
                start = time.perf_counter()
                rows = [trainer.step() for _ in range(iterations)]
                wall = (time.perf_counter() - start) / iterations
                trainer.close()
                mean = {k: statistics.mean(r[k] for r in rows) for k in KEYS}
                waits[overlap] = mean["time/judge_wait"]
                hidden = ""
                if overlap and latency > 0 and waits[False] > 0:
                    hidden = f"{max(0.0, 1 - waits[True] / waits[False]):6.0%}"
                print(f"{latency * 1000:6.0f}ms {('yes' if overlap else 'no'):>7} | {mean[KEYS[0]]:8.3f} {mean[KEYS[1]]:10.3f} "
                      f"{mean[KEYS[2]]:10.3f} {mean[KEYS[3]]:7.3f} {wall:8.3f} | {hidden}")  # fmt: skip


def gpu_timing(steps: int, resolution: int, repeats: int) -> None:
    import types

    import torch
    from diffusers import FluxPipeline, FluxTransformer2DModel

    from arrpo.rl.lora import add_lora
    from arrpo.rl.policies.base import Conditioning
    from arrpo.rl.policies.flux import FluxPolicy
    from arrpo.rl.rollout import SDEParams, replay_step, rollout
    from arrpo.rl.sde import sigma_schedule

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    with torch.device(device):  # FLUX.1-dev transformer config, random weights
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
            guidance_embeds=True, axes_dims_rope=[16, 56, 56],
        ).to(torch.bfloat16)  # fmt: skip
    transformer.enable_gradient_checkpointing()
    add_lora(transformer, rank=16, alpha=32, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    pipe = types.SimpleNamespace(
        transformer=transformer, vae_scale_factor=8,
        _prepare_latent_image_ids=FluxPipeline._prepare_latent_image_ids, _pack_latents=FluxPipeline._pack_latents,
    )  # fmt: skip
    policy = FluxPolicy(pipe, height=resolution, width=resolution, guidance=3.5)
    n = 2
    cond = Conditioning({
        "embeds": torch.randn(n, 512, 4096, device=device, dtype=torch.bfloat16),
        "pooled": torch.randn(n, 768, device=device, dtype=torch.bfloat16),
    })  # fmt: skip
    sde, sigmas = SDEParams(), sigma_schedule(steps, 3.0).to(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    params = sum(p.numel() for p in transformer.parameters())
    print(f"FLUX.1-dev-size transformer ({params / 1e9:.2f} B params, bf16, LoRA r16), {resolution} px, {steps} steps, group {n}")
    for k in range(repeats + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        traj = rollout(policy, cond, policy.initial_noise(n, gen), sigmas, sde, gen)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        ratios = []
        for t in range(steps - 1):
            out = replay_step(policy, traj, t, sde)
            ratios.append(float(torch.exp(out.log_prob - traj.log_probs[:, t]).max()))
            out.log_prob.mean().backward()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        transformer.zero_grad(set_to_none=True)
        if k:  # the first round is warm-up
            print(f"rollout {t1 - t0:7.2f}s  replay+backward ({steps - 1} steps) {t2 - t1:7.2f}s  "
                  f"max ratio {max(ratios):.6f}  peak mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="time a real-size FLUX transformer on CUDA")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=2, help="prompts per iteration (CPU mode)")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.1, 0.5], help="seconds per comparison")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.gpu:
        gpu_timing(args.steps, args.resolution, args.repeats)
    else:
        cpu_table(args.iterations, args.latencies, args.prompts)


if __name__ == "__main__":
    main()
