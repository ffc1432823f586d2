"""The masked-value rule: what a host that cannot see a mask is handed for a masked sample.

The trainers arrpo plugs into compute advantages from plain reward values, per group, and never
see arrpo's mask: Flow-GRPO's ``PerPromptStatTracker`` (``(r − mean)/(std + 1e-4)`` per prompt,
the std the prompt's own or, with ``global_std``, the batch's), DanceGRPO (``(r − mean)/(std +
1e-8)`` per chunk of ``num_generations``), Flow-Factory (weighted sum with a per-group or batch
std, or GDPO: a per-group z-score then a batch normalisation). The rule, one home for every
adapter:

1. **A group with any masked sample is masked as a whole**: every sample of it gets the same
   value, :data:`MASKED_VALUE` (0.0, the service's own value for a masked sample).
2. **Why whole groups.** Give a masked sample the mean ``m`` of its group's valid rewards and its
   advantage is 0 and the group mean stays ``m`` — but a per-group std does not: ``n`` valid
   rewards with std ``s`` plus ``j`` values at ``m`` have std ``s·sqrt(n/(n+j))``, so every other
   sample's advantage grows by ``sqrt((n+j)/n)``; and with any other value the masked sample's
   own advantage is not 0. No value does both, so a partly masked group carries no signal at all.
3. **What that gives under each host's own code** (proved in ``tests/hosts`` with re-written host
   code): a constant group has mean equal to its value, so ``(r − mean)`` is exactly 0 — zero
   advantage under every per-group centring, whatever the std (a zero std only meets the host's
   epsilon: 0 / 1e-4 is 0). Other groups' statistics are their own, so with a per-group std
   (Flow-GRPO ``global_std=False``, Flow-Factory ``global_std: false`` with ``advantage_aggregation:
   sum``, DanceGRPO, verl-omni with a per-group std) :data:`MASKED_VALUE` moves no other sample.
4. **One std of the whole batch** (Flow-GRPO's default ``global_std=True``: ``np.std`` of every
   reward of the gathered epoch; Flow-Factory's default; verl-omni's ``torch.std`` of the batch):
   the masked values are part of that std, so 0.0 would scale every other advantage by a common
   factor. Where the adapter sees every reward of that scope (Flow-GRPO's lazy values, read after
   the epoch), each masked sample gets :func:`std_preserving_fill`: ``n`` valid values of mean
   ``μ`` and std ``s`` (the host's ``ddof``) with ``j`` values at ``c`` have, with ``d = c − μ``,
   sum of squared deviations ``S + n·j·d²/(n+j)`` where ``S = (n − ddof)·s²``; keeping the std at
   ``s`` means ``n·j·d²/(n+j) = j·s²``, so ``c = μ + s·sqrt((n+j)/n)`` — the same form for the
   population (``ddof=0``) and the sample (``ddof=1``) std, each with its own ``s``. The masked
   group is still constant (zero advantage), the other groups' means are their own and the batch
   std is unchanged, so no other advantage moves. Where the adapter cannot see the whole scope
   (one group per call, other rewards summed in by the host) or the host normalises so that no
   value keeps it exact (Flow-Factory's GDPO: a masked group's z-scores are 0 whatever its value,
   and zeros shrink the batch std of the advantages), a masked sample fails the step with
   :func:`batch_std_refusal`, naming the host setting that makes it exact.

Floats: 0.0 is exact in every format. The fill crosses the host's float32 conversion rounded to
float32 (relative error below 6e-8 of ``c``), so the batch std moves by at most about that
relative amount: the other advantages agree with a batch without the masked samples to float32
precision, not bit for bit; and the masked advantage is 0 up to the rounding of the host's mean of
a constant (Flow-GRPO: float64 ``np.mean``, 0 in the tests; a float32 ``torch.mean``, as verl's,
can leave ~1e-7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from arrpo.vocab import HostStd, choices

#: Per host: the setting under which :data:`MASKED_VALUE` is exact (said when a step is refused).
EXACT_SETTING = {
    "flow_grpo": "set config.sample.global_std = False in Flow-GRPO's config and host_std='group' in "
                 "$ARRPO_REWARD_OPTIONS",
    "flow_factory": "set `global_std: false` and `advantage_aggregation: sum` in Flow-Factory's train config "
                    "and `host_std: group` in the arrpo reward's entry",
    "verl_omni": "use a per-group std in verl-omni's advantage (compute_flow_grpo_outcome_advantage with "
                 "global_std=False) and host_std='group' in reward_kwargs",
    "flow_factory_remote": "set `global_std: false` and `advantage_aggregation: sum` in Flow-Factory's train "
                           "config and end server_url with /group-std (…/flow-factory/<k>/group-std)",
    "trainer": "normalise each group by its own std in the trainer and pass host_std='group'",
}

#: The value of every sample of a masked group.
MASKED_VALUE = 0.0


@dataclass(frozen=True)
class HostValues:
    """What the host receives for one group: ``rewards``, ``advantages`` and ``mask`` after the
    rule, and ``promoted``: samples that were valid but share a group with a masked one."""

    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    promoted: int = 0


def host_values(rewards: Sequence[float], advantages: Sequence[float], mask: Sequence[bool]) -> HostValues:
    """Apply the rule to one group (the host's group: all samples it normalises together)."""
    if len(rewards) != len(mask) or len(advantages) != len(mask):
        raise ValueError("rewards, advantages and mask must have one entry per sample")
    if all(mask):
        return HostValues(list(rewards), list(advantages), list(mask))
    n = len(mask)
    return HostValues([MASKED_VALUE] * n, [MASKED_VALUE] * n, [False] * n, promoted=sum(mask))


def check_host_std(value: str) -> str:
    """``value`` if it names a std scope (:data:`arrpo.vocab.HostStd`), else a clear error."""
    if value not in choices(HostStd):
        raise ValueError(f"host_std must be 'group' (the host divides by each group's own std) or 'batch' "
                         f"(one std of the whole batch), not {value!r}")
    return value


def std_preserving_fill(valid: Sequence[float], masked: int, ddof: int = 0) -> float:
    """The one value for ``masked`` samples that keeps the std of ``valid`` (``ddof`` 0: population,
    as ``np.std``; 1: sample, as ``torch.std``) when they join it: ``μ + s·sqrt((n+j)/n)``.

    No valid value: any constant keeps every advantage 0, so :data:`MASKED_VALUE`. One valid value
    under ``ddof=0`` (or up to ``ddof`` values): its std is 0 (or undefined), so ``μ``.
    """
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (population std) or 1 (sample std), not {ddof!r}")
    if masked < 0:
        raise ValueError(f"masked must be at least 0, not {masked}")
    n = len(valid)
    if n == 0:
        return MASKED_VALUE
    mean = math.fsum(valid) / n
    if n <= max(ddof, 1) or masked == 0:
        return mean
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in valid) / (n - ddof))
    return mean + s * math.sqrt((n + masked) / n)


def batch_std_refusal(host: str, masked: int, why: str) -> str:
    """The message of a step refused because ``masked`` samples cannot be made exact (``why``)."""
    fix = EXACT_SETTING.get(host, EXACT_SETTING["trainer"])
    return (f"{masked} masked sample(s) this step, and the host divides advantages by one std of the whole batch "
            f"(host_std='batch'): {why}, so no value arrpo could hand keeps the other samples' advantages "
            f"unchanged. To train with masked samples exactly, {fix}; or fix the cause of the masking")


def batch_std_notice(host: str) -> str:
    """What an adapter logs once at start-up when masked samples will fail its steps (``host_std``
    'batch' where no value can be exact), so the fix is known before the first masked sample."""
    fix = EXACT_SETTING.get(host, EXACT_SETTING["trainer"])
    return (f"arrpo reward: host_std='batch' (the host's default: one std of the whole batch); a step with a "
            f"masked sample (a tie, an invalid verdict, a failed request under on_failure='mask') will fail, since "
            f"no value keeps the other advantages exact there. To train through masked samples, {fix}")
