"""Adapters that plug the arrpo reward service into RL trainers.

* :class:`arrpo.integrations.flow_grpo.ArrpoRewardFn` — the ``(images, prompts, metadata) ->
  (scores, info)`` reward function of Flow-GRPO / DanceGRPO-style trainers, group-aware.
* :class:`arrpo.integrations.flow_factory.ArrpoGroupwiseReward` — a Flow-Factory-style groupwise
  reward model.
* Anything else: the JSON protocol in ``docs/serving.md`` via :mod:`arrpo.client`.
"""
