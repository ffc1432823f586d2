"""Base model vs. trained LoRA on the same prompts and seeds, written as an HTML grid.

What ``arrpo sample`` does after training: render every (prompt, seed) with the base pipeline,
load the adapter with diffusers' own ``pipe.load_lora_weights`` (so this also checks that the
saved adapter is a standard one), render again from the same noise, and write
``index.html`` (relative image paths) plus ``samples.jsonl``. Sampling is the deterministic Euler
ODE of the training schedule (no classifier-free guidance, as during training).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from arrpo.errors import ArrpoError
from arrpo.rl.data import PromptItem
from arrpo.rl.evaluate import sample_images
from arrpo.rl.lora import DIFFUSERS_LORA_FILE
from arrpo.rl.policies.base import FlowPolicy
from arrpo.rl.rollout import SDEParams


class LoraLoadError(ArrpoError, ValueError, kind="bad_input"):
    """The adapter folder holds nothing diffusers can load into this pipeline."""


@dataclass(frozen=True)
class SampleRow:
    """One (prompt, seed) of the grid; paths are relative to the output folder."""

    prompt: str
    seed: int
    base: str
    lora: str
    source: str | None = None


def check_adapter_dir(lora_dir: str | Path) -> Path:
    """The adapter file in ``lora_dir``, or :class:`LoraLoadError` saying what is there instead."""
    lora_dir = Path(lora_dir)
    if not (lora_dir / DIFFUSERS_LORA_FILE).is_file():
        hint = " (a run from an older arrpo: retrain or re-export)" if (lora_dir / "lora.safetensors").exists() else ""
        raise LoraLoadError(f"{lora_dir}: no {DIFFUSERS_LORA_FILE}; expected the folder `arrpo train` writes as final/ or a checkpoint{hint}")
    path = lora_dir / DIFFUSERS_LORA_FILE
    problem = safetensors_problem(path)
    if problem:
        raise LoraLoadError(f"{path}: not a usable adapter file ({problem}); retrain or copy it again")
    return path


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a safetensors file holding tensors (``None`` when it is one), read from
    its header alone: 8 bytes of little-endian header length, then a JSON object of tensors."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 2 or length > min(size - 8, 100_000_000):
                return f"{size:,} bytes, no safetensors header"
            header = json.loads(f.read(length).decode("utf-8"))
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    except (UnicodeDecodeError, ValueError):
        return "the safetensors header is not JSON"
    if not isinstance(header, dict) or not [k for k in header if k != "__metadata__"]:
        return "it holds no tensors"
    return None


def load_adapter(policy: FlowPolicy, lora_dir: str | Path) -> None:
    """``pipe.load_lora_weights(lora_dir)``, refusing a folder that activates no adapter."""
    check_adapter_dir(lora_dir)
    try:
        policy.pipe.load_lora_weights(str(lora_dir))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # e.g. weights of another model family
        raise LoraLoadError(f"{lora_dir}: diffusers cannot load this LoRA into {type(policy.pipe).__name__}: "
                            f"{type(exc).__name__}: {str(exc)[:300]}") from None
    if not policy.pipe.get_active_adapters():
        raise LoraLoadError(f"{lora_dir}: diffusers loaded no LoRA weights into {type(policy.pipe).__name__} (wrong model family?)")


def render_comparison(
    policy: FlowPolicy,
    lora_dir: str | Path,
    items: list[PromptItem],
    seeds: list[int],
    out: str | Path,
    *,
    num_steps: int,
    shift: float,
    sources: list[Image.Image] | None = None,
) -> list[SampleRow]:
    """Render base and LoRA images of every (item, seed) into ``out/images`` and write the grid."""
    check_adapter_dir(lora_dir)  # before minutes of base rendering
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    prompts = [it.prompt for it in items for _ in seeds]
    all_seeds = [s for _ in items for s in seeds]
    per_image = [src for src in sources for _ in seeds] if sources else None
    kwargs = dict(num_steps=num_steps, shift=shift, sde=SDEParams(eta=0.0), sources=per_image)
    base = sample_images(policy, prompts, all_seeds, **kwargs)
    load_adapter(policy, lora_dir)
    trained = sample_images(policy, prompts, all_seeds, **kwargs)
    rows = []
    for k, (prompt, seed) in enumerate(zip(prompts, all_seeds, strict=True)):
        stem = f"images/{k // len(seeds):04d}-seed{seed}"
        base[k].save(out / f"{stem}-base.png")
        trained[k].save(out / f"{stem}-lora.png")
        source = None
        if per_image:
            source = f"images/{k // len(seeds):04d}-source.png"
            per_image[k].convert("RGB").save(out / source)
        rows.append(SampleRow(prompt, seed, f"{stem}-base.png", f"{stem}-lora.png", source))
    write_grid(rows, out, title=f"base vs. LoRA {Path(lora_dir).name}")
    return rows


def write_grid(rows: list[SampleRow], out: str | Path, *, title: str = "base vs. LoRA") -> Path:
    """Write ``out/index.html`` (one row per prompt and seed) and ``out/samples.jsonl``."""
    out = Path(out)
    with_source = any(r.source for r in rows)
    head = "<th>prompt</th><th>seed</th>" + ("<th>source</th>" if with_source else "") + "<th>base</th><th>LoRA</th>"
    body = []
    for r in rows:
        cells = [f"<td>{html.escape(r.prompt)}</td>", f"<td>{r.seed}</td>"]
        if with_source:
            cells.append(f'<td><img src="{html.escape(r.source or "")}"></td>')
        cells += [f'<td><img src="{html.escape(r.base)}"></td>', f'<td><img src="{html.escape(r.lora)}"></td>']
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif}td{vertical-align:top;padding:4px}"
        "img{min-width:128px;max-width:384px;image-rendering:pixelated}"  # tiny test pipelines render 32 px
        f"</style></head><body><h1>{html.escape(title)}</h1>\n<table><tr>{head}</tr>\n"
        + "\n".join(body)
        + "\n</table></body></html>\n"
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    with (out / "samples.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    return out / "index.html"
