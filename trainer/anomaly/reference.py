"""NumPy reference of the scorer heads, the yardstick the exported graphs are checked against."""
from __future__ import annotations

import numpy as np

from trainer.anomaly.gaussian import mahalanobis


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
    """Per-image raw patch score: the worst patch's distance. features (N, h, w, D) -> (N,)."""
    d = nearest_distance(features, bank)
    return d.reshape(len(d), -1).max(axis=1) if len(d) else np.zeros(0, np.float32)


def global_stats(feats):
    """[patch, mean(, meansq)] feature list -> (N, moments * C) pooled statistics (None without a global path)."""
    return np.concatenate(list(feats[1:]), axis=1) if len(feats) > 1 else None


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def normalise(raw, threshold, scale):
    """Raw distance -> the map's output scale, where ``threshold`` lands at exactly 0.5."""
    return sigmoid((np.asarray(raw, dtype=np.float64) - threshold) / scale)


def score_and_map(feats, params):
    """What the Keras/TFLite scorer outputs, computed in NumPy: (score (N, 1), map (N, h, w))."""
    feats = feats if isinstance(feats, (list, tuple)) else [feats]
    d = nearest_distance(feats[0], params["bank"])
    near = np.clip(d / params["unit"], 0.0, 6.0)          # the bank conv's fused RELU6
    z = (near * params["unit"] - params["t"]) / params["s"]
    logits = []
    if "patch" in params:
        a, b = params["patch"]
        logits.append(a * near.reshape(len(near), -1).max(axis=1) + b)
    g = global_stats(feats)
    if g is not None and "global" in params:
        ga, gb = params["global"]
        logits.append(ga * mahalanobis(g, params["mu"], params["w"]) + gb)
    logit = np.max(logits, axis=0)
    return sigmoid(logit)[:, None], sigmoid(z)


def combined_reference(feats, probe, params):
    """What the combined graph (``combined_model``) outputs, in NumPy: {"score" (N,), "map", "type"?}.

    ``feats``: [patch, global stats] as the extractor gives them; ``probe``: (N, C) pooled probe activations.
    """
    from trainer.anomaly import prototypes as P

    d = nearest_distance(feats[0], params["bank"])
    unit = params["unit"]
    near = np.clip(d / unit, 0.0, 6.0)
    amap = sigmoid((near * unit - params["t"]) / params["s"])
    (ap, bp), (ag, bg) = params["patch_u"], params["global_u"]
    ev = [ap * near.reshape(len(near), -1).max(1) + bp]
    g = global_stats(feats)
    if g is not None:
        ev.append(ag * mahalanobis(g, params["mu"], params["w"]) + bg)
    p = params["probe"]
    z = (np.asarray(probe, np.float64) - p["mu"]) / p["sd"]
    x = np.c_[tuple(ev) + (z @ p["w"] + p["b"],)]
    sw = np.asarray(params["stack"]["w"], np.float64)[[0, 1, 2] if g is not None else [0, 2]]
    thr, gain = params["decision"]
    out = {"score": sigmoid(gain * (x @ sw + params["stack"]["b"] - thr)), "map": amap}
    t = params.get("types")
    if t:
        desc = P.descriptors(P.attention_pool(feats[0], near, t["beta"]), z)
        sims = desc @ np.c_[t["proto_patch"], t["proto_probe"]].T
        logits = P.TEMPERATURE * np.c_[np.full(len(sims), -2.0), sims, np.full(len(sims), t["floor"])]
        e = np.exp(logits - logits.max(1, keepdims=True))
        out["type"] = e / e.sum(1, keepdims=True)
    return out
