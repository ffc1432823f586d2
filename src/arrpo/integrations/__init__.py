"""Plug the arrpo reward service into RL trainers, at each trainer's own call site.

* :mod:`arrpo.integrations.flow_grpo` — Flow-GRPO: ``with_arrpo(multi_score)`` adds the
  ``"arrpo"`` reward name; groups spread over ranks are completed before judging.
* :mod:`arrpo.integrations.flow_factory` — Flow-Factory: ``ArrpoReward``, a groupwise reward model.
* :mod:`arrpo.integrations.dance_grpo` — DanceGRPO: ``ChunkRewards`` for its per-image decode loop.
* :mod:`arrpo.integrations.groups` — the shared scorer (grouping, rank exchange, failure policy).
* Anything else: the JSON protocol in ``docs/serving.md`` via :mod:`arrpo.client`.
"""
