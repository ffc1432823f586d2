"""Training prompts and the deterministic, resumable order in which processes consume them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PromptItem:
    """One training prompt (and the source image path for editing)."""

    prompt: str
    source: str | None = None


def read_prompts(path: str | Path) -> list[PromptItem]:
    """Read ``.txt`` (one prompt a line) or ``.jsonl`` (``{"prompt": ..., "source": ...}``) prompts.

    Relative ``source`` paths are resolved against the file's folder.
    """
    path = Path(path)
    items: list[PromptItem] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            row = json.loads(line)
            if "prompt" not in row:
                raise ValueError(f"{path}:{n}: a row needs a 'prompt'")
            source = row.get("source")
            if source and not Path(source).is_absolute():
                source = str(path.parent / source)
            items.append(PromptItem(row["prompt"], source))
        else:
            items.append(PromptItem(line.strip()))
    if not items:
        raise ValueError(f"{path}: no prompts")
    return items


class PromptStream:
    """An endless stream of prompts, reshuffled each epoch from ``seed``; position is one integer.

    At each iteration every process takes ``per_process`` consecutive prompts of the global order,
    rank by rank, so a prompt's whole group is generated on one process.
    """

    def __init__(self, items: list[PromptItem], seed: int, position: int = 0):
        self.items, self.seed, self.position = items, seed, position

    def _at(self, index: int) -> PromptItem:
        epoch, offset = divmod(index, len(self.items))
        order = list(range(len(self.items)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return self.items[order[offset]]

    def next(self, per_process: int, rank: int, world: int) -> list[PromptItem]:
        """This rank's prompts for the next iteration (advances the position for all ranks)."""
        start = self.position + rank * per_process
        self.position += per_process * world
        return [self._at(start + k) for k in range(per_process)]
