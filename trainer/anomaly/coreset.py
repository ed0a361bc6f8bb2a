"""Greedy k-center coreset: a small memory bank that still covers every good patch.

PatchCore's observation: the nearest-neighbour score only needs bank rows
close to every good patch, so picking rows that greedily cover the feature
space (each new row = the patch farthest from the rows chosen so far) keeps
the score of good patches low with 1-5% of them. Distances are computed on a
Gaussian random projection (Johnson-Lindenstrauss), which keeps them roughly
intact at a fraction of the cost.
"""
from __future__ import annotations

import numpy as np


def greedy_coreset(features, k, proj_dim=128, seed=0, progress=None):
    """Indices of ``k`` rows of ``features`` (N, D) chosen by greedy k-center."""
    x = np.asarray(features, dtype=np.float32)
    n, d = x.shape
    if k >= n:
        return np.arange(n)
    if k < 1:
        raise ValueError(f"coreset size must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    if proj_dim and proj_dim < d:
        proj = rng.normal(size=(d, proj_dim)).astype(np.float32) / np.float32(np.sqrt(proj_dim))
        z = x @ proj
    else:
        z = x
    sq = np.einsum("ij,ij->i", z, z)
    first = int(rng.integers(n))
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = first
    min_d = np.maximum(sq + sq[first] - 2.0 * (z @ z[first]), 0.0)
    step = max(1, k // 10)
    for i in range(1, k):
        j = int(np.argmax(min_d))
        chosen[i] = j
        np.minimum(min_d, np.maximum(sq + sq[j] - 2.0 * (z @ z[j]), 0.0), out=min_d)
        if progress and (i + 1) % step == 0:
            progress(i + 1, k, float(np.sqrt(min_d.max())))
    return chosen
