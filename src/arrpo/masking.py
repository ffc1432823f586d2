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
   (Flow-GRPO ``global_std=False``, Flow-Factory ``global_std: false``, DanceGRPO) no other sample
   moves. Where the host divides by one std of the whole batch (Flow-GRPO's default
   ``global_std=True``, Flow-Factory's default, GDPO's batch normalisation), the masked group's
   values are part of that std as any group whose samples all score alike is: the other
   advantages then share one common factor (their signs and order are kept). The host gives arrpo
   no way to leave a sample out of its batch std; set the host's std to per-group for exact
   equality.

Values cross the host's float32 conversion unchanged: 0.0 is exact in every format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
