"""Verification cannot be passed by position bias alone, and it uses the learn config's sampling."""

from __future__ import annotations

import json

import pytest

from arrpo.rubrics import LearnConfig, RubricLearner, read_seeds

ALWAYS_FIRST = json.dumps({"rank": [1, 2], "reason": "Image 1 looks better."})


def _blind(request, default):
    return ALWAYS_FIRST  # ignores the criteria and the images


async def _learn(seed_dir, seeing, backend_for, tmp_path, *, t_max: int, verify_order: str | None, name: str):
    _, server = seeing({"judge": _blind})
    seeds = read_seeds(seed_dir(["first"] * 24, name=name), task="t2i")
    options = {"verify_order": verify_order} if verify_order else {}
    learner = RubricLearner(backend_for(server), LearnConfig(task="t2i", k=2, t_max=t_max, **options))
    return await learner.learn(seeds, tmp_path / f"{name}-{t_max}.state.jsonl")


@pytest.mark.parametrize("t_max", [0, 3])
async def test_always_first_verifier_verifies_nothing_by_default(seed_dir, seeing, backend_for, tmp_path, t_max):
    result = await _learn(seed_dir, seeing, backend_for, tmp_path, t_max=t_max, verify_order=None, name="both")
    s = result.summary
    assert (s.passed_first, s.refined, s.dropped) == (0, 0, 24)
    assert s.verifications == 24 * (t_max + 1) == s.failed_verifications
    assert s.order_disagreements == s.failed_verifications  # every failure: the two orders disagreed
    assert all(a.orders == ["AB", "BA"] and a.orders_agree is False for o in result.outcomes for a in o.attempts)
    answers = result.outcomes[0].attempts[0].answers
    assert [(a.order, a.winner) for a in answers] == [("AB", "A"), ("BA", "B")]
    assert answers[0].reason == "Image 1 looks better."
    assert result.rubric is None and "no pair was verified" in result.message


async def test_random_keeps_one_coin_per_pair_whatever_t_max(seed_dir, seeing, backend_for, tmp_path):
    verified = {}
    for t_max in (0, 4):
        result = await _learn(seed_dir, seeing, backend_for, tmp_path, t_max=t_max, verify_order="random",
                              name="random")
        for outcome in result.outcomes:
            shown = {tuple(a.orders) for a in outcome.attempts}
            assert len(shown) == 1, outcome  # every refinement shows the pair in the same order
        verified[t_max] = {o.id for o in result.outcomes if o.status in ("passed_first", "refined")}
        assert result.summary.refined == 0  # a refinement never re-draws the coin
        assert result.summary.order_disagreements == 0
    assert verified[0] == verified[4]
    assert 6 <= len(verified[0]) <= 18, len(verified[0])  # about half


async def test_verifier_uses_the_learn_configs_sampling(seed_dir, seeing, backend_for, tmp_path):
    _, server = seeing()
    seeds = read_seeds(seed_dir(["first", "refine"]), task="t2i")
    config = LearnConfig(task="t2i", k=2, t_max=1, temperature=0.7, max_tokens=777)
    await RubricLearner(backend_for(server), config).learn(seeds, tmp_path / "s.jsonl")
    verifications = [r for r in server.seen if '"rank"' in r.text]
    assert verifications
    assert {(r.body["temperature"], r.body["max_tokens"]) for r in verifications} == {(0.7, 777)}


class ExplodesOn:
    """Backend wrapper raising an unexpected (non-backend) error for requests mentioning ``text``."""

    def __init__(self, inner, text: str):
        self.inner, self.text = inner, text

    @property
    def model_id(self):
        return self.inner.model_id

    async def complete(self, request):
        if any(self.text in getattr(p, "text", "") for m in request.messages for p in m.parts):
            raise KeyError("a bug in some layer")
        return await self.inner.complete(request)

    async def aclose(self):
        await self.inner.aclose()


async def test_an_unexpected_failure_of_one_pair_is_recorded_and_learning_goes_on(
    seed_dir, seeing, backend_for, tmp_path
):
    _, server = seeing()
    seeds = read_seeds(seed_dir(["first", "first", "refine"]), task="t2i")
    state = tmp_path / "s.jsonl"
    backend = ExplodesOn(backend_for(server), "caption number 1 ")
    result = await RubricLearner(backend, LearnConfig(task="t2i", k=2, t_max=1)).learn(
        seeds, state, allow_incomplete=True
    )
    assert set(result.errors) == {"first-1"} and "KeyError" in result.errors["first-1"]
    assert sorted(o.id for o in result.outcomes) == ["first-0", "refine-2"]
    assert result.summary.failed == 1 and result.rubric is not None
    records = [json.loads(line) for line in state.read_text().splitlines()]
    assert {"kind": "error", "id": "first-1", "message": result.errors["first-1"]} in records
