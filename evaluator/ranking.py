"""Ranking a model's scores: the best five class ids of each image and their scores, by the recipe's rule."""

from __future__ import annotations

import numpy as np

TOP_K = 5


def top_k(scores: np.ndarray, class_offset: int = 0, k: int = TOP_K,
          ranking: str = "argmax-lowest-id") -> tuple[np.ndarray, np.ndarray]:
    """Best k class ids (background column dropped) and their finite scores, ranked by the recipe's rule.

    "argmax-lowest-id": the first k of a stable argsort of -scores, without sorting all 1000 columns: k rounds of
    argmax, which returns the first (lowest) id among equal maxima, each taking the previous winner out.
    "numpy-argsort": the scripts' np.argsort(row)[-k:][::-1] on the float32 row. Its order differs from the first
    rule only where two of the best k + 1 scores are equal (distinct values sort the same way in any sort), so only
    those rows are argsorted; quantized outputs tie often, float outputs almost never.
    """
    class_scores = scores[:, class_offset:].astype(np.float32)
    exact = ranking == "numpy-argsort"
    remaining = class_scores.copy() if exact else class_scores  # winners are overwritten below
    k = min(k, remaining.shape[1])
    rounds = min(k + 1, remaining.shape[1]) if exact else k
    rows = np.arange(len(remaining))
    ids = np.empty((len(remaining), rounds), dtype=np.int32)
    values = np.empty((len(remaining), rounds), dtype=np.float32)
    for place in range(rounds):
        ids[:, place] = best = remaining.argmax(axis=1)
        values[:, place] = remaining[rows, best]
        remaining[rows, best] = -np.inf
    if exact:
        tied = np.flatnonzero((values[:, 1:] == values[:, :-1]).any(axis=1))
        if len(tied):  # numpy sorts each row of a 2-D argsort on its own, as the scripts' 1-D argsort
            order = np.argsort(class_scores[tied], axis=1)[:, ::-1][:, :k]
            ids[tied, :k], values[tied, :k] = order, np.take_along_axis(class_scores[tied], order, axis=1)
    return ids[:, :k], values[:, :k]
