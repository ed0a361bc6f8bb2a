"""The combined scorer as one Keras graph: raw pixels -> {"score", "map", "type"}.

    extractor -> patch path (bank, map, patch evidence)   \\
              -> global path (Gaussian evidence)            > stack (one FULLY_CONNECTED) -> "score"
              -> probe_tap pooled -> probe logit          /
    map -> softmax over cells -> weighted mean of patch features (+ standardised probe) -> prototypes -> "type"

Everything the good-only scorer has is kept (the map still localises); the stack weights and the
prototypes come from ``trainer.anomaly.stack`` / ``prototypes``. Evidences enter the stack in their
normalised good-spread units (anchored, like the scorer's, so int8 keeps defects' range), and the
chosen threshold is folded into the stack's bias: the score decides at 0.5 like every other model.
"""
from __future__ import annotations

import numpy as np

from trainer.anomaly import layers as L
from trainer.anomaly.model import ANCHOR, _anchored, _global_evidence, patch_map
from trainer.tfutil import import_keras


def build_combined(extractor, params, name="combined_scorer"):
    """``params``: the scorer's (``bank``, ``t``, ``s``, ``unit``, ``mu``, ``w``) plus ``patch_u`` /
    ``global_u`` (a, b: raw -> normalised evidence), ``probe`` (mu, sd, w, b), ``stack`` (w, b),
    ``decision`` (threshold, gain) and optionally ``types`` (``prototypes.type_logits_params`` + beta)."""
    keras = import_keras()
    inp = keras.Input(extractor.input.shape[1:], dtype="float32", name="image")
    outs = extractor(inp)
    f, gstats, probe = outs[0], outs[1:-1], outs[-1]
    near, amap = patch_map(keras, f, params)
    ev = [_anchored(keras, L.ImageMax(name="patch_max")(near), params["patch_u"], "patch_evidence")]
    if gstats:
        ev.append(_global_evidence(keras, gstats, {**params, "global": params["global_u"]}))
    ev.append(_probe_logit(keras, probe, params["probe"]))
    x = keras.layers.Concatenate(name="evidences")(ev)
    sw, sb = np.asarray(params["stack"]["w"], np.float64), float(params["stack"]["b"])
    thr, gain = (float(v) for v in params["decision"])
    kern = np.zeros((3 * len(ev), 3), np.float32)
    kern[0::3, 0] = gain * sw[[0, 1, 2] if gstats else [0, 2]]
    dense = keras.layers.Dense(3, name="stack")
    z = dense(x)
    dense.set_weights([kern, np.array([gain * (sb - thr), ANCHOR, -ANCHOR], np.float32)])
    score = keras.layers.Activation("sigmoid", name="score")(L.First(name="logit")(z))
    out = {"score": score, "map": amap}
    if params.get("types"):
        out["type"] = _type_head(keras, f, near, probe, params["probe"], params["types"])
    return keras.Model(inp, out, name=name)


def _probe_logit(keras, probe, p):
    """(B, 1, 1, C) pooled activations -> (B, 3) anchored probe logit (standardisation folded in)."""
    mu, sd, w, b = (np.asarray(p[k], np.float64) for k in ("mu", "sd", "w", "b"))
    conv = keras.layers.Conv2D(3, 1, name="probe")
    out = conv(probe)
    kern = np.zeros((len(mu), 3), np.float32)
    kern[:, 0] = w / sd
    conv.set_weights([kern[None, None], np.array([float(b) - float(np.sum(w * mu / sd)), ANCHOR, -ANCHOR], np.float32)])
    return keras.layers.Reshape((3,), name="probe_evidence")(out)


def _type_head(keras, f, near, probe, p, t):
    """Softmax over ["good", *types, "unknown"] from cosine similarities to the prototypes."""
    from trainer.anomaly.prototypes import TEMPERATURE

    h, w = near.shape[1], near.shape[2]
    cells = keras.layers.Reshape((h * w,), name="type_cells")(near)
    att = keras.layers.Softmax(name="type_attention")(keras.layers.Rescaling(float(t["beta"]), name="type_beta")(cells))
    pooled = L.WeightedMean(name="type_pool")([f, keras.layers.Reshape((h, w), name="type_weights")(att)])
    a = L.L2Normalize(name="type_patch_unit")(pooled)
    mu, sd = np.asarray(p["mu"], np.float32), np.asarray(p["sd"], np.float32)
    std = keras.layers.DepthwiseConv2D(1, name="type_probe_standardise")
    zs = std(probe)
    std.set_weights([(1.0 / sd)[None, None, :, None], -mu / sd])
    zu = L.L2Normalize(name="type_probe_unit")(zs)
    pa, pz = np.asarray(t["proto_patch"], np.float32), np.asarray(t["proto_probe"], np.float32)
    n = len(pa)
    scale = TEMPERATURE / np.sqrt(2.0)
    sims = []
    for name, src, proto in (("type_sim_patch", a, pa), ("type_sim_probe", zu, pz)):
        conv = keras.layers.Conv2D(n + 2, 1, name=name)
        sims.append(conv(src))
        kern = np.zeros((proto.shape[1], n + 2), np.float32)
        kern[:, 1:n + 1] = scale * proto.T
        bias = np.zeros(n + 2, np.float32)
        if name == "type_sim_patch":  # the constant columns: "good" never, "unknown" at the floor
            bias[0], bias[-1] = -2.0 * TEMPERATURE, TEMPERATURE * float(t["floor"])
        conv.set_weights([kern[None, None], bias])
    logits = keras.layers.Reshape((n + 2,), name="type_logits")(keras.layers.Add(name="type_sim")(sims))
    return keras.layers.Softmax(name="type")(logits)
