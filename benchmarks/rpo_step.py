"""Time one RPO iteration, broken down, and how much judge latency the overlap hides.

CPU mode (default): a tiny random SD3 pipeline, a programmatic judge with a simulated latency per
comparison (0 / 100 / 500 ms), each with and without overlap (rolling out the next batch while the
current one is judged). Prints mean seconds per iteration of rollout, judge wait, replay+backward,
optimizer and wall time, and the fraction of judge latency hidden = 1 − wait(overlap)/wait(serial).

Real sizes on a GPU (FLUX.1-dev and Qwen-Image-Edit with random weights, phase by phase with peak
memory, and the in-process judge at Qwen3-VL-8B size) are timed by ``benchmarks/gpu_proof.py``.

    python benchmarks/rpo_step.py                 # CPU table
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=2, help="prompts per iteration (CPU mode)")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.1, 0.5], help="seconds per comparison")
    args = parser.parse_args()
    cpu_table(args.iterations, args.latencies, args.prompts)


if __name__ == "__main__":
    main()
