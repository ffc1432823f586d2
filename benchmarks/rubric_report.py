"""Size and speed of the learning report (``report.html``) for N seed pairs.

Builds a learning state for N pairs without any model (every pair gets one failed verification in
both orders and one refinement that passes, K = 5, plus a 10 × 4 rubric whose tips name their
source criteria), then times :func:`arrpo.rubrics.report.write_learn_report` and, when the
``playwright`` package and a system Chromium are available, how long Chromium takes to load the
page. Images are synthetic 1024 × 1024 photos-like JPEGs (smooth gradients plus noise), or the
pairs of a real seed file with ``--pairs FILE --format FMT``.

    python benchmarks/rubric_report.py                      # 100 synthetic pairs
    python benchmarks/rubric_report.py --pairs /work/shared/data/mjbench-artifacts/human/captions_human.json --format mjbench
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageFilter

from arrpo.datasets.seeds import read_seeds
from arrpo.rubric import Provenance, Rubric, Theme
from arrpo.rubrics.learn import PairOutcome, VerifyAnswer, VerifyAttempt
from arrpo.rubrics.report import RUN_RECORD, write_learn_report


def synthetic_seeds(folder: Path, n: int, size: int) -> Path:
    rng = random.Random(0)
    lines = []
    for i in range(n):
        names = []
        for side in ("a", "b"):
            base = Image.linear_gradient("L").resize((size, size)).convert("RGB")
            noise = Image.effect_noise((size, size), 40).convert("RGB")
            image = Image.blend(base, noise, 0.35).filter(ImageFilter.GaussianBlur(1))
            name = f"{i}_{side}.jpg"
            image.save(folder / name, quality=90)
            names.append(name)
        lines.append(json.dumps({"id": f"p{i}", "prompt": f"a synthetic scene number {i} with several objects",
                                 "image_a": names[0], "image_b": names[1], "label": rng.choice("AB")}))
    path = folder / "seeds.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def fake_state(seeds, folder: Path, k: int = 5) -> tuple[Path, Path]:
    state = folder / "rubric.json.state.jsonl"
    rubric_path = folder / "rubric.json"
    records = [{"kind": "header", "fingerprint": {"task": "t2i", "k": k, "t_max": 5, "verify_order": "both",
                                                   "model": "none"}},
               {"kind": RUN_RECORD, "rubric": str(rubric_path), "seed_file": str(seeds.path), "format": seeds.format,
                "images": None, "task": "t2i", "seed": 0, "learn_ids": [p.id for p in seeds.pairs]}]
    criteria_pool = []
    for pair in seeds.pairs:
        first = [f"Criterion {j} for {pair.id}: the main object is sharp, complete and correctly coloured."
                 for j in range(k)]
        second = [*first[:-1], f"Criterion {k - 1} for {pair.id}: every object named in the caption is present."]
        failed = VerifyAttempt(criteria=first, winner="tie", correct=False, orders=["AB", "BA"], orders_agree=False,
                               answers=[VerifyAnswer(order="AB", winner="A", reason="Image 1 looks sharper overall."),
                                        VerifyAnswer(order="BA", winner="B", reason="Image 1 has cleaner edges.")])
        passed = VerifyAttempt(criteria=second, winner=pair.preferred, correct=True, orders=["AB", "BA"],
                               orders_agree=True,
                               answers=[VerifyAnswer(order=o, winner=pair.preferred, reason="Only one image shows all"
                                                     " the named objects.") for o in ("AB", "BA")])
        outcome = PairOutcome(id=pair.id, status="refined", attempts=[failed, passed], criteria=second, calls=6)
        records.append({"kind": "pair", **outcome.model_dump(mode="json")})
        criteria_pool += [(text, pair.id) for text in second]
    themes = [Theme(theme=f"Theme {t}", tips=[f"Tip {t}.{j}: look for this in one image." for j in range(4)])
              for t in range(10)]
    records.append({"kind": "structure", "method": "model", "usage": {"prompt_tokens": 0, "completion_tokens": 0},
                    "calls": 1, "criteria": [{"n": i + 1, "text": t, "pairs": [p]} for i, (t, p) in enumerate(criteria_pool)],
                    "themes": [{"theme": th.theme, "sources": None,
                                "tips": [{"tip": tip, "sources": [1 + (7 * (t * 4 + j)) % len(criteria_pool)]}
                                         for j, tip in enumerate(th.tips)]} for t, th in enumerate(themes)]})
    state.write_text("".join(json.dumps(r) + "\n" for r in records))
    Rubric(themes=themes, task="t2i", provenance=Provenance(method="learned")).save(rubric_path)
    return state, rubric_path


def chromium_load_s(report: Path) -> float | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        return None
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        elapsed = time.perf_counter() - started
        browser.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="Synthetic pairs (ignored with --pairs).")
    parser.add_argument("--size", type=int, default=1024, help="Side of the synthetic images.")
    parser.add_argument("--pairs", type=Path, help="A real seed file instead of synthetic pairs.")
    parser.add_argument("--format", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed_file = args.pairs or synthetic_seeds(folder, args.n, args.size)
        seeds = read_seeds(seed_file, task="t2i", format=args.format)
        state, _ = fake_state(seeds, folder)
        started = time.perf_counter()
        report = write_learn_report(state)
        write_s = time.perf_counter() - started
        size = report.stat().st_size
        load_s = chromium_load_s(report)
    n = len(seeds.pairs)
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print("| pairs | report MB | kB / pair | write s | Chromium load s |")
    print("|---|---|---|---|---|")
    load = f"{load_s:.2f}" if load_s is not None else "n/a"
    print(f"| {n} | {size / 1e6:.2f} | {size / 1e3 / n:.1f} | {write_s:.1f} | {load} |")


if __name__ == "__main__":
    main()
