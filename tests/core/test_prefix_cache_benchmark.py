"""``benchmarks/prefix_cache.py``'s simulated block prefix cache: blocks chain, images are hashed
with their bytes, and on the judge's real requests the cached layout shares its prefix."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "prefix_cache.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("prefix_cache", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["prefix_cache"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    yield module
    sys.modules.pop("prefix_cache", None)


def test_blocks_chain_and_images_are_part_of_a_blocks_hash(bench):
    cache = bench.PrefixCache()
    text = [bench.Token(f"t{n}") for n in range(40)]
    assert cache.serve(text) == 0
    assert cache.serve(text) == 32  # two full blocks; the partial third is never cached
    assert cache.serve([bench.Token("x"), *text[1:]]) == 0  # a change in block 0 changes every later hash
    one = [bench.Token("<|image_pad|>", "sha-one")] * 32
    other = [bench.Token("<|image_pad|>", "sha-other")] * 32
    assert cache.serve(one) == 0 and cache.serve(other) == 0  # same placeholder tokens, other image
    assert cache.serve(one) == 31  # all blocks hit: the last token is still computed


def test_the_cached_layout_shares_the_instructions_and_rubric(bench):
    tokenize = bench.text_tokenizer(None)
    caches = bench.simulate(bench.eval_requests("t2i", 4, 256), tokenize)
    assert caches["authors"].cached_tokens == 0  # every request starts with its own image
    shared = len(tokenize(bench.RUBRIC.render()))
    assert caches["cached"].cached_tokens >= 7 * shared  # 7 of 8 requests reuse at least the rubric
    edits = bench.simulate(bench.rpo_requests("edit", 4, 1, 1, 256), tokenize)
    assert 0 < edits["authors"].cached_tokens < edits["cached"].cached_tokens  # the shared source image
