"""Plug the arrpo reward service into RL trainers, at each trainer's own call site.

* :mod:`arrpo.integrations.flow_grpo` — Flow-GRPO: ``with_arrpo(multi_score)`` adds the
  ``"arrpo"`` reward name; groups spread over ranks and batches are assembled before judging.
* :mod:`arrpo.integrations.flow_factory` — Flow-Factory: ``ArrpoReward``, a groupwise reward model.
* :mod:`arrpo.integrations.dance_grpo` — DanceGRPO: ``ChunkRewards`` for its per-image decode loop.
* :mod:`arrpo.integrations.groups` — ``GroupScorer``, the shared blocking scorer (and the one to
  use from any other loop).

The mechanisms behind them, one home each (reuse them for a new host):

* :mod:`arrpo.integrations.assembly` — whole groups across ranks and calls; values read later.
* :mod:`arrpo.masking` — the masked-value rule: what a host that cannot see a mask
  receives for a masked sample, and why.
* :mod:`arrpo.step_monitor` — the dead-step monitor (warn every dead step, fail a run).
* :mod:`arrpo.integrations.service` — ``/health`` as facts, re-read after failures; in-flight
  planning from the service's admission rule.
* :mod:`arrpo.integrations.judging` — sending groups and anchor pairs within those limits.
* :mod:`arrpo.integrations.exchange` — all-gathers between ranks; :mod:`~.convert` — images.
* Anything else: the JSON protocol in ``docs/serving.md`` via :mod:`arrpo.client`.
"""
