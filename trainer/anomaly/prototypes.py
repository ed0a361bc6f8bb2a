"""Defect types from a handful of examples: what is wrong, matched against per-type prototypes.

A defect's descriptor is what the part looks like *where it is anomalous*, not the whole image: the
patch features pooled with weights ``softmax(beta * distance / typical distance)`` over the map (the
most anomalous cells dominate; a hard argmax is not an Edge TPU op and measured no better), beside the
standardised pooled probe activations. Each type's prototype is the mean descriptor of its labelled
examples (1-5 are enough to start); the type is the nearest prototype by cosine, or ``unknown`` when
none is as close as the labelled examples were to their own (leave-one-out).

On ``../shared/realdata`` (3 examples per type, float, caught and missed test defects) type accuracy
is 0.43 on screw (chance 0.20; the five types differ by *where* on a rotating screw) and 0.50 on
magnetic tiles (chance 0.20); the whole-image pooled features alone give 0.24 / 0.48.
"""
from __future__ import annotations

import numpy as np

BETA = 10.0         # attention sharpness, in units of a typical cell's distance
TEMPERATURE = 20.0  # softmax over cosine similarities: 0.1 of cosine = e^2 in odds
UNKNOWN = "unknown"


def unit(x, axis=-1):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def attention_pool(patches, near, beta_eff):
    """(N, h, w, D) unit patch features, (N, h, w) map distances (bank units) -> (N, D) unit descriptors."""
    n = len(near)
    logits = beta_eff * np.asarray(near, np.float64).reshape(n, -1)
    w = np.exp(logits - logits.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    return unit(np.einsum("nc,ncd->nd", w, np.asarray(patches, np.float64).reshape(n, w.shape[1], -1)))


def descriptors(pooled_patch, probe_z):
    """[attention-pooled patches, standardised probe] -> (N, D + C), each half unit length."""
    return np.c_[unit(pooled_patch), unit(probe_z)] / np.sqrt(2.0)


def fit_prototypes(desc, types):
    """(names, prototypes (P, D), unknown similarity floor, info) from labelled defect descriptors."""
    types = np.asarray(types)
    names = sorted(set(types.tolist()))
    protos = np.stack([unit(desc[types == t].mean(0)) for t in names])
    # leave-one-out: how close an unseen example of a known type comes to its own prototype
    loo = []
    for i, t in enumerate(types):
        same = (types == t)
        same[i] = False
        if same.any():
            loo.append(float(unit(desc[same].mean(0)) @ desc[i] / np.linalg.norm(desc[i])))
    if loo:
        floor = float(np.min(loo)) - 0.05
    else:  # one example per type: nothing to leave out; accept anything nearer than the other types are
        sims = unit(desc) @ protos.T
        floor = float(np.median(sims)) if len(names) > 1 else -1.0
    info = {"types": names, "examples": {t: int((types == t).sum()) for t in names},
            "unknown_below": floor, "leave_one_out_similarity": loo}
    return names, protos, floor, info


def predict_types(desc, names, protos, floor):
    """Nearest prototype per descriptor, ``unknown`` below ``floor``."""
    sims = unit(desc) @ protos.T
    best = sims.argmax(1)
    return [names[j] if sims[i, j] >= floor else UNKNOWN for i, j in enumerate(best)]


def type_logits_params(names, protos, floor, patch_dim):
    """What the graph bakes in: labels ["good", *names, "unknown"] and one dense layer per half.

    logits = TEMPERATURE * [-2, sim_1 .. sim_P, floor] (cosine in [-1, 1]: "good" is never chosen;
    ``unknown`` wins exactly when no similarity reaches the floor).
    """
    labels = ["good", *names, UNKNOWN]
    pa, pz = protos[:, :patch_dim], protos[:, patch_dim:]
    return {"labels": labels, "proto_patch": pa, "proto_probe": pz, "floor": float(floor)}
