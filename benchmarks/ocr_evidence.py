"""OCR evidence on rendered pairs: how often the evidence alone picks the correctly spelled image.

Each T2I pair is one generated scene (font, size, colours, background clutter, rotation, blur,
JPEG quality drawn from a seeded RNG) rendered twice: once with the requested text and once
with one typo (substitution, deletion, swap of two letters, or a doubled letter), shown as A or
B at random. Each edit case is a sign with old text (the source) and two edits: the new text
against either the new text with a typo or the old text left in place. Every image is read by
the real OCR model (cache off) and decided by :func:`arrpo.evidence.decide_pair`.

Printed: accuracy (the correct image wins), ties, wrong answers and "decisive" (the evidence
would change a VLM's winner under ``ocr_policy: override``) with the accuracy of the decisive
ones, for several decisive margins; then by typo kind and by image condition; then ms per image.

    python benchmarks/ocr_evidence.py                 # 64 T2I pairs, 32 edits, 1 thread
    python benchmarks/ocr_evidence.py --pairs 200 --edits 64 --threads 2 --max-side 1024
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, replace

from arrpo.evidence import OcrReader, build_evidence, decide_pair, extract_requested_text
from arrpo.evidence.values import OcrRead
from arrpo.images import ImageData
from arrpo.testing.text_images import FONTS, TYPO_KINDS, Scene, fonts_installed, render_scene, typo

TEXTS = [
    "OPEN LATE", "FRESH COFFEE", "GRAND OPENING", "BAKERY", "Welcome Home", "NO PARKING",
    "Cafe Rosa", "SUMMER SALE", "Public Library", "Hotel Paradise", "Happy Birthday", "EXIT ONLY",
    "Fresh Bread Daily", "CLOSED", "Main Street", "PIZZA", "Good Morning", "BOOKSHOP", "Ice Cream",
    "Train Station",
]
EDITS = [("SALE", "OPEN"), ("CLOSED", "WELCOME"), ("Monday", "Friday"), ("COFFEE", "TEA ROOM"),
         ("Books", "Records"), ("EXIT", "ENTRANCE"), ("PARKING", "GARDEN"), ("Hotel", "Hostel")]
PALETTES = [  # ink, background, sign panel (None: text straight on the background)
    ((20, 20, 20), (180, 200, 225), (245, 245, 240)),
    ((250, 250, 250), (40, 60, 90), (200, 30, 40)),
    ((255, 230, 0), (30, 30, 30), None),
    ((30, 90, 30), (235, 225, 200), (250, 245, 230)),
    ((10, 10, 120), (140, 160, 120), (230, 230, 250)),
    ((240, 240, 240), (90, 60, 40), None),
]
MARGINS = (0.0, 0.05, 0.1)
CONDITIONS = ["clean", "clutter", "rotated", "blurred", "jpeg", "small", "all"]


@dataclass
class Case:
    kind: str  # typo kind, or "kept old text" for edits
    condition: str
    correct_is_a: bool
    reads: tuple[OcrRead, ...]
    prompt: str
    task: str


def random_scene(rng: random.Random, text: str, seed: int) -> tuple[Scene, str]:
    ink, background, sign = rng.choice(PALETTES)
    condition = rng.choice(CONDITIONS)
    hard = condition == "all"  # every degradation at once
    scene = Scene(
        text=text,
        font=rng.choice(FONTS),
        size=rng.choice([18, 22]) if condition == "small" else rng.choice([28, 36, 48, 64, 80]),
        canvas=rng.choice([(512, 512), (768, 512), (1024, 1024)]),
        ink=ink, background=background, sign=sign,
        clutter=rng.randrange(6, 20) if condition in ("clutter", "all") else 0,
        rotation=rng.choice([-25, -10, 10, 25]) if condition in ("rotated", "all") else 0.0,
        blur=rng.choice([1.0, 1.5, 2.0]) if condition in ("blurred", "all") else 0.0,
        jpeg_quality=rng.choice([20, 35, 50]) if condition in ("jpeg", "all") else None,
        seed=seed,
    )
    if hard:
        scene = replace(scene, size=max(scene.size, 36))
    return scene, condition


def read_all(reader: OcrReader, images: list[ImageData], latencies: list[float]) -> tuple[OcrRead, ...]:
    reads = []
    for image in images:
        started = time.perf_counter()
        reads.append(reader.read(image))
        latencies.append((time.perf_counter() - started) * 1000)
    return tuple(reads)


def t2i_cases(reader: OcrReader, n: int, rng: random.Random, latencies: list[float]) -> list[Case]:
    cases = []
    for i in range(n):
        text = rng.choice(TEXTS)
        scene, condition = random_scene(rng, text, seed=i)
        kind = TYPO_KINDS[i % len(TYPO_KINDS)]
        wrong = scene.with_text(typo(text, kind, seed=i))
        correct_is_a = rng.random() < 0.5
        pair = [render_scene(scene), render_scene(wrong)]
        if not correct_is_a:
            pair.reverse()
        cases.append(Case(kind, condition, correct_is_a, read_all(reader, pair, latencies),
                          f'a sign that says "{text}"', "t2i"))
    return cases


def edit_cases(reader: OcrReader, n: int, rng: random.Random, latencies: list[float]) -> list[Case]:
    cases = []
    for i in range(n):
        old, new = EDITS[i % len(EDITS)]
        scene, condition = random_scene(rng, old, seed=1000 + i)
        kind = "kept old text" if i % 2 == 0 else TYPO_KINDS[(i // 2) % len(TYPO_KINDS)]
        worse = old if kind == "kept old text" else typo(new, kind, seed=i)  # type: ignore[arg-type]
        correct_is_a = rng.random() < 0.5
        pair = [render_scene(scene.with_text(new)), render_scene(scene.with_text(worse))]
        if not correct_is_a:
            pair.reverse()
        images = [*pair, render_scene(scene)]
        cases.append(Case(kind, condition, correct_is_a, read_all(reader, images, latencies),
                          f'Replace "{old}" with "{new}" on the sign', "edit"))
    return cases


def decisions(case: Case, margin: float):
    requested = extract_requested_text(case.prompt)
    source = case.reads[2] if len(case.reads) > 2 else None
    evidence = build_evidence(requested, case.reads[0], case.reads[1], source=source, task=case.task)
    return decide_pair(evidence, decisive_margin=margin)


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def table(title: str, groups: dict[str, list[Case]]) -> None:
    """One row per group: outcomes of the evidence-only decision, then how many decisions are
    decisive at each margin and how many of those are right."""
    print(f"\n{title}")
    head = " | ".join(f"decisive@{m} (right)" for m in MARGINS[1:])
    print(f"| group | pairs | right | tie | wrong | invalid | {head} |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(MARGINS[1:]))
    for name, cases in groups.items():
        correct = ["A" if c.correct_is_a else "B" for c in cases]
        plain = [decisions(c, 0.0).winner for c in cases]
        right = sum(w == r for w, r in zip(plain, correct, strict=True))
        ties, invalid = plain.count("tie"), plain.count("invalid")
        cells = []
        for margin in MARGINS[1:]:
            made = [(d.winner == r) for d, r in zip((decisions(c, margin) for c in cases), correct, strict=True)
                    if d.decisive]
            cells.append(f"{pct(len(made), len(cases))} ({pct(sum(made), len(made))})")
        print(f"| {name} | {len(cases)} | {pct(right, len(cases))} | {pct(ties, len(cases))} | "
              f"{pct(len(cases) - right - ties - invalid, len(cases))} | {pct(invalid, len(cases))} | "
              + " | ".join(cells) + " |")


def grouped(cases: list[Case], key) -> dict[str, list[Case]]:
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        groups[key(case)].append(case)
    return dict(sorted(groups.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64, help="T2I pairs")
    parser.add_argument("--edits", type=int, default=32, help="edit cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="OCR engine threads")
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {platform.python_version()}, fonts: {', '.join(fonts_installed())}")
    reader = OcrReader(threads=args.threads, max_side=args.max_side, cache_size=0)
    started = time.perf_counter()
    reader.check()
    print(f"engine start: {(time.perf_counter() - started) * 1000:.0f} ms ({reader.engine_name})")
    rng = random.Random(args.seed)
    latencies: list[float] = []
    t2i = t2i_cases(reader, args.pairs, rng, latencies)
    t2i_ms = list(latencies)
    edits = edit_cases(reader, args.edits, rng, latencies)

    table("T2I pairs: the requested text against one typo, by typo",
          {"all": t2i, **grouped(t2i, lambda c: c.kind)})
    table("T2I pairs by image condition", grouped(t2i, lambda c: c.condition))
    if edits:
        table("Edits: the new text against a typo of it, or the old text kept",
              {"all": edits, **grouped(edits, lambda c: c.kind)})

    print(f"\nms per image (threads={args.threads}, max_side={args.max_side}, {len(latencies)} images, cache off)")
    print("| images | mean | p50 | p90 | max |\n|---|---:|---:|---:|---:|")
    for name, values in (("T2I", t2i_ms), ("edits", latencies[len(t2i_ms):]), ("all", latencies)):
        if values:
            q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
            print(f"| {name} | {statistics.mean(values):.0f} | {statistics.median(values):.0f} | {q[8]:.0f} | "
                  f"{max(values):.0f} |")


if __name__ == "__main__":
    main()
