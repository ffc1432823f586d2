"""Where training metrics and sample images go: metrics.jsonl, TensorBoard, an image gallery."""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image


class MetricsSink:
    """Writes scalar metrics to ``metrics.jsonl`` and (optionally) TensorBoard and W&B."""

    def __init__(self, output_dir: str | Path, *, tensorboard: bool = True, wandb: bool = False,
                 config: dict | None = None, start_iteration: int | None = None):
        """``start_iteration``: the iteration the run (re)starts from (0 fresh, N after resuming
        checkpoint N). Records past it, left by a run killed before its next checkpoint, are
        dropped from ``metrics.jsonl`` and TensorBoard, since those iterations are done again.
        ``None`` appends without touching earlier records."""
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "metrics.jsonl"
        if start_iteration is not None and path.exists():
            drop_records_after(path, start_iteration)
        self._jsonl = path.open("a", encoding="utf-8")
        self._tb = None
        self._wandb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if start_iteration is None else start_iteration + 1
            self._tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=purge)
        if wandb:
            import wandb as wb  # optional dependency

            self._wandb = wb.init(project="arrpo", dir=str(self.dir), config=config or {})

    def log(self, step: int, values: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in values.items() if v is not None}
        self._jsonl.write(json.dumps({"iteration": step, **{k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()}}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for key, value in clean.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def drop_records_after(path: Path, iteration: int) -> int:
    """Rewrite the JSONL metrics file ``path`` (atomically) without records past ``iteration``, and
    without a line torn by a kill mid-write; returns how many lines were dropped."""
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            step = int(record["iteration"])
        except (ValueError, TypeError, KeyError):
            dropped += 1
            continue
        if step > iteration:
            dropped += 1
        else:
            kept.append(line + "\n")
    if dropped:
        partial = path.with_suffix(".jsonl.tmp")
        partial.write_text("".join(kept), encoding="utf-8")
        partial.replace(path)
    return dropped


def save_gallery(path: str | Path, images: list[Image.Image], group_size: int, captions: list[str]) -> Path:
    """A grid, one row per prompt group, and a ``.json`` beside it with the captions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = images[0].size
    rows = math.ceil(len(images) / group_size)
    grid = Image.new("RGB", (w * group_size, h * rows), "white")
    for k, im in enumerate(images):
        grid.paste(im, ((k % group_size) * w, (k // group_size) * h))
    grid.save(path)
    path.with_suffix(".json").write_text(json.dumps(captions, indent=1), encoding="utf-8")
    return path
