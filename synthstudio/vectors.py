"""Plain-numpy vector helpers shared by selection, dedup, filters and metrics (no Django).

The kNN graph is built in row blocks so memory stays O(n·k + block·n) instead of the O(n²) of a full
similarity matrix.
"""

from __future__ import annotations

import numpy as np


def normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def cosine_knn(
    x: np.ndarray, k: int, *, block_size: int = 2048, mean_centre: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the indices and cosine similarities of its k most similar *other* rows.

    Returns (indices, similarities), each of shape (n, k'), k' = min(k, n-1), sorted by similarity descending;
    ties break toward the lower index. Rows are mean-centred first when `mean_centre` (vote-k does this).
    """
    x = np.asarray(x, dtype=np.float32)
    if mean_centre:
        x = x - x.mean(axis=0, keepdims=True)
    unit = normalise_rows(x)
    n = unit.shape[0]
    k_eff = max(0, min(k, n - 1))
    indices = np.empty((n, k_eff), dtype=np.int64)
    sims = np.empty((n, k_eff), dtype=np.float32)
    if k_eff == 0:
        return indices, sims
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        block = unit[start:stop] @ unit.T  # (b, n)
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never your own neighbour
        part = np.argpartition(-block, k_eff - 1, axis=1)[:, :k_eff]
        part_sims = np.take_along_axis(block, part, axis=1)
        # sort by (-similarity, index) so results are deterministic
        order = np.lexsort((part, -part_sims), axis=1)
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = np.take_along_axis(part_sims, order, axis=1)
    return indices, sims
