"""Smoke test and throughput table for the offline vLLM backend — run on a GPU machine.

    pip install 'arrpo[vllm]'
    python benchmarks/vllm_smoke.py --model Qwen/Qwen3-VL-2B-Instruct --pairs 64

Judges synthetic pairs (a red vs a blue square, "which is redder?") with ``order=both`` through
:class:`arrpo.vlm.vllm_offline.VLLMBackend`, checks that answers parse (guided JSON) and that the
redder image wins, and prints a table: pairs, requests, valid %, correct %, seconds, pairs/s.
Exits 1 when fewer than 90% of verdicts are valid. Not run in CI (needs vLLM and a CUDA GPU).
"""

from __future__ import annotations

import argparse
import io
import sys
import time

from PIL import Image

from arrpo.images import load_image
from arrpo.judge import PairwiseJudge
from arrpo.schema import Comparison
from arrpo.vlm.vllm_offline import VLLMBackend


def _square(color: tuple[int, int, int], size: int = 256):
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return load_image(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen3-VL-2B-Instruct")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    args = parser.parse_args(argv)

    backend = VLLMBackend(args.model, max_model_len=args.max_model_len,
                          gpu_memory_utilization=args.gpu_memory_utilization)
    started = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - started
    judge = PairwiseJudge(backend, order="both", max_tokens=256)
    comparisons = []
    for i in range(args.pairs):
        red, blue = _square((200 + i % 50, 10, 10)), _square((10, 10, 200 + i % 50))
        a, b = (red, blue) if i % 2 == 0 else (blue, red)
        comparisons.append(Comparison(prompt="Which image is redder?", image_a=a, image_b=b, id=str(i)))
    started = time.perf_counter()
    verdicts = judge.judge_many_sync(comparisons)
    judge_s = time.perf_counter() - started
    valid = [v for v in verdicts if v.is_valid]
    correct = [v for i, v in enumerate(verdicts) if v.winner == ("A" if i % 2 == 0 else "B")]
    rows = [("model", args.model), ("engine start s", f"{load_s:.1f}"), ("pairs", len(verdicts)),
            ("requests", 2 * len(verdicts)), ("generate batches", backend.batches),
            ("valid %", f"{100 * len(valid) / len(verdicts):.1f}"),
            ("correct %", f"{100 * len(correct) / len(verdicts):.1f}"),
            ("judge s", f"{judge_s:.2f}"), ("pairs/s", f"{len(verdicts) / judge_s:.2f}")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for v in verdicts[:3]:
        print(f"example: {v.winner} — {v.reason or v.invalid_reason}")
    return 0 if len(valid) >= 0.9 * len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
