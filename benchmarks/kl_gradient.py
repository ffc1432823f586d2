"""The gradient the KL term actually contributes at on-policy samples: k1 estimate vs. closed form.

The authors' KL is the k1 estimate ``logp_new(x) − logp_ref(x)`` at the sampled ``x`` (treated
as data). At an on-policy sample its expected gradient is ``E[∇ log p_θ(x)] = 0``: whatever β
is, it adds zero-mean noise, not a pull towards the reference. The closed form
``(μ_new − μ_ref)² / 2σ²`` (``objective.kl: gaussian``) has the same expected value (both
estimate KL(π_θ ‖ π_ref)) but a gradient that does point back to the reference.

Setup: a tiny random SD3 pipeline (32 px), the paper's sampler (8 dance-SDE steps, η 0.3,
shift 3), LoRA r4 on to_q/to_k/to_v/to_out.0 with B drawn at std ``--drift`` so that the policy
differs from its reference as after some training. ``--samples`` on-policy trajectories; every
step but the last is replayed, as in training. For each loss (mean over samples and steps) the
script prints the gradient norm over the LoRA parameters, the cosine with the closed-form
gradient, and the value; the policy term (PPO, ratio 1, the official rewards +1 / −0.1 in random
pairs) is the yardstick for choosing β.

    python benchmarks/kl_gradient.py                  # a table on a CPU in a minute or two
    python benchmarks/kl_gradient.py --samples 256 --drift 0.1
"""

from __future__ import annotations

import argparse
import random
import tempfile


def measure(samples: int, drift: float, seed: int, micro_batch: int = 8) -> dict[str, dict[str, float]]:
    import torch

    from arrpo.rl.lora import add_lora
    from arrpo.rl.policies import ATTENTION_TARGETS, load_policy
    from arrpo.rl.rollout import SDEParams, replay_step, rollout
    from arrpo.rl.sde import gaussian_kl, sigma_schedule
    from arrpo.rl.tiny import save_tiny_pipeline

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        policy = load_policy("sd3", str(save_tiny_pipeline("sd3", f"{tmp}/sd3")), height=32, width=32, max_sequence_length=16)
    params = add_lora(policy.transformer, rank=4, alpha=8, target_modules=ATTENTION_TARGETS)
    with torch.no_grad():
        for name, p in policy.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(std=drift)
    sde = SDEParams("dance", eta=0.3)
    sigmas = sigma_schedule(8, 3.0)
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    prompts = ["a red apple on a wooden table", "a photo of a cat sitting on a blue sofa",
               "a watercolor painting of mountains at sunrise", "an astronaut riding a horse in the desert"]  # fmt: skip
    sums = {k: [torch.zeros_like(p) for p in params] for k in ("k1", "gaussian", "policy")}
    values = {"k1": 0.0, "gaussian": 0.0}
    terms = 0
    chunks = []  # per micro-batch: (k1 gradient sum, gaussian gradient sum), to get a standard error
    for start in range(0, samples, micro_batch):
        n = min(micro_batch, samples - start)
        cond = policy.encode([prompts[(start + i) % len(prompts)] for i in range(n)])
        traj = rollout(policy, cond, policy.initial_noise(n, gen), sigmas, sde, gen)
        before = {k: torch.cat([g.flatten() for g in sums[k]]).clone() for k in ("k1", "gaussian")}
        adv = torch.tensor([a for _ in range(0, n, 2) for a in rng.choice([(1.0, -0.1), (-0.1, 1.0)])][:n])
        for t in range(traj.num_steps - 1):  # all but the last, as trained
            with torch.no_grad(), policy.reference():
                ref = replay_step(policy, traj, t, sde)
            losses = {}
            new = replay_step(policy, traj, t, sde)
            losses["k1"] = (new.log_prob - ref.log_prob).sum()
            losses["gaussian"] = gaussian_kl(new.mean, ref.mean, new.std).sum()
            losses["policy"] = (-adv * torch.exp(new.log_prob - traj.log_probs[:, t])).sum()
            for key, loss in losses.items():
                grads = torch.autograd.grad(loss, params, retain_graph=True)
                for acc, g in zip(sums[key], grads, strict=True):
                    acc += g
                if key in values:
                    values[key] += float(loss.detach())
            terms += n
        after = {k: torch.cat([g.flatten() for g in sums[k]]) for k in ("k1", "gaussian")}
        chunks.append((after["k1"] - before["k1"], after["gaussian"] - before["gaussian"]))
    flat = {k: torch.cat([g.flatten() for g in v]) / terms for k, v in sums.items()}
    ref_dir = flat["gaussian"]
    # Is the k1 gradient's component along the closed-form direction zero on average? Project each
    # micro-batch's k1 gradient on the unit closed-form direction: mean and its standard error.
    unit = ref_dir / ref_dir.norm()
    proj = torch.tensor([float(k1 @ unit) for k1, _ in chunks]) / (terms / len(chunks))
    out = {"projection": {"mean": float(proj.mean()), "stderr": float(proj.std() / len(proj) ** 0.5)}}
    for key, g in flat.items():
        cos = float(torch.nn.functional.cosine_similarity(g, ref_dir, dim=0))
        out[key] = {"grad_norm": float(g.norm()), "cos_gaussian": cos, "value": values.get(key, float("nan")) / terms}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--drift", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print("tiny SD3 32 px, 8 dance-SDE steps (η 0.3, shift 3), LoRA r4, 7 trained steps per sample; "
          "gradients are means over samples × steps")  # fmt: skip
    header = (f"{'seed':>4} {'drift':>6} {'samples':>7} | {'‖∇k1‖':>9} {'‖∇gauss‖':>9} {'cos(k1,g)':>9} "
              f"{'k1 along g ± se':>20} | {'k1 value':>9} {'gauss value':>11} | {'‖∇policy‖':>9}")
    print(header)
    print("-" * len(header))
    for seed in args.seeds:
        for drift in args.drift:
            for samples in args.samples:
                r = measure(samples, drift, seed)
                along = f"{r['projection']['mean']:.2e} ± {r['projection']['stderr']:.1e}"
                print(f"{seed:>4d} {drift:>6.2f} {samples:>7d} | {r['k1']['grad_norm']:>9.2e} {r['gaussian']['grad_norm']:>9.2e} "
                      f"{r['k1']['cos_gaussian']:>9.3f} {along:>20} | {r['k1']['value']:>9.2e} {r['gaussian']['value']:>11.2e} | "
                      f"{r['policy']['grad_norm']:>9.2e}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
