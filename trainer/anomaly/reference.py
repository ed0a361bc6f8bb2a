"""NumPy reference of the scorer head, the yardstick the exported graphs are checked against."""
from __future__ import annotations

import numpy as np


def nearest_distance(features, bank, chunk=4096):
    """Unit features (..., D) and unit bank (K, D) -> 1 - max_j <f, m_j>, shape (...)."""
    f = np.asarray(features, dtype=np.float32)
    shape = f.shape[:-1]
    flat = f.reshape(-1, f.shape[-1])
    bank_t = np.asarray(bank, dtype=np.float32).T
    out = np.empty(len(flat), np.float32)
    for i in range(0, len(flat), chunk):
        out[i:i + chunk] = 1.0 - (flat[i:i + chunk] @ bank_t).max(axis=1)
    return out.reshape(shape)


def raw_scores(features, bank):
    """Per-image raw score: the worst patch's distance. features (N, h, w, D) -> (N,)."""
    d = nearest_distance(features, bank)
    return d.reshape(len(d), -1).max(axis=1) if len(d) else np.zeros(0, np.float32)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def normalise(raw, threshold, scale):
    """Raw distance -> the model's output scale, where ``threshold`` lands at exactly 0.5."""
    return sigmoid((np.asarray(raw, dtype=np.float64) - threshold) / scale)


def score_and_map(features, bank, threshold, scale):
    """What the Keras/TFLite scorer outputs, computed in NumPy: (score (N, 1), map (N, h, w))."""
    d = nearest_distance(features, bank)
    amap = normalise(d, threshold, scale)
    return amap.reshape(len(amap), -1).max(axis=1, keepdims=True), amap
