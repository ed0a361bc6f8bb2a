"""The anomaly scorer as one Keras graph: raw pixels -> {"score": (B, 1), "map": (B, h, w)}.

Graph (every part converts to TFLite float32 and full-integer int8)::

    raw pixels 0..255 -> Rescaling(1/127.5, -1) -> MobileNetV2 taps (two depths)
    -> L2 normalise each tap -> deeper tap resized to the shallower grid -> concat -> 3x3 average pool
    -> L2 normalise -> reshape (h*w, D) -> BankDistance (matmul with the bank + min)
    -> sigmoid -> "map" (B, h, w);  max over the map -> "score" (B, 1)

``score`` and ``map`` are ``sigmoid((d - t) / s)`` of the nearest-neighbour
distance ``d``, so the decision threshold is exactly 0.5 for both.
"""
from __future__ import annotations

import numpy as np

from trainer.anomaly import layers as L
from trainer.tfutil import import_keras

DEFAULT_TAPS = ("block_5_add", "block_12_add")  # strides 8 and 16: mid-level texture + part structure


def build_feature_extractor(alpha=1.0, input_size=224, weights="imagenet", taps=DEFAULT_TAPS, pool=3,
                            tap_norm=True):
    """Input raw pixels (None, H, W, 3) -> unit patch features (None, h, w, D)."""
    keras = import_keras()
    from edge.preprocess import OFFSET, SCALE, as_hw
    from trainer.backbone import build_backbone

    h, w = as_hw(input_size)
    base = build_backbone(alpha=alpha, input_size=(h, w), weights=weights)
    names = {layer.name for layer in base.layers}
    missing = [t for t in taps if t not in names]
    if missing:
        from edge.errors import EdgeInspectError

        raise EdgeInspectError(f"anomaly.taps {missing} are not MobileNetV2 layers; use e.g. {list(DEFAULT_TAPS)}")
    tapper = keras.Model(base.input, [base.get_layer(t).output for t in taps], name="backbone_taps")
    tapper.trainable = False

    inp = keras.Input((h, w, 3), dtype="float32", name="image")
    x = keras.layers.Rescaling(SCALE, offset=OFFSET, name="scale_pixels")(inp)
    feats = tapper(x, training=False)
    feats = feats if isinstance(feats, (list, tuple)) else [feats]
    gh, gw = feats[0].shape[1], feats[0].shape[2]
    resized = []
    for i, f in enumerate(feats):
        # Unit length per tap: each depth weighs the same whatever its activation range, and
        # every tap leaves int8 with the same fixed [-1, 1] scale, so the concat loses nothing.
        if tap_norm:
            f = L.L2Normalize(name=f"unit_tap_{i}")(f)
        if (f.shape[1], f.shape[2]) != (gh, gw):
            f = keras.layers.Resizing(gh, gw, interpolation="bilinear", name=f"to_grid_{i}")(f)
        resized.append(f)
    x = keras.layers.Concatenate(axis=-1, name="taps")(resized) if len(resized) > 1 else resized[0]
    if pool and pool > 1:
        # Local neighbourhood: a patch feature describes its 3x3 surroundings (PatchCore).
        x = keras.layers.AveragePooling2D(pool, strides=1, padding="same", name="local_pool")(x)
    x = L.L2Normalize(name="unit_features")(x)
    return keras.Model(inp, x, name="patch_features")


def build_scorer(extractor, bank, threshold, scale, name="anomaly_scorer"):
    """Extractor + memory bank + calibration -> the deployable model (dict outputs)."""
    keras = import_keras()
    bank = np.asarray(bank, dtype=np.float32)
    _, gh, gw, d = extractor.output.shape
    inp = keras.Input(extractor.input.shape[1:], dtype="float32", name="image")
    f = extractor(inp)
    # (B, h, w, D) -> (B, h*w, D): the matmul stays <= 3-D for the Edge TPU compiler.
    f = keras.layers.Reshape((gh * gw, d), name="patches")(f)
    bank_layer = L.BankDistance(bank.shape[0], d, threshold=threshold, scale=scale, name="bank_distance")
    z = bank_layer(f)
    m = keras.layers.Activation("sigmoid", name="map_flat")(z)
    amap = keras.layers.Reshape((gh, gw), name="map")(m)
    score = L.ImageMax(name="score")(amap)
    bank_layer.set_bank(bank)
    return keras.Model(inp, {"score": score, "map": amap}, name=name)


def scorer_parts(model):
    """(extractor, bank (K, D), threshold t, scale s) of a built/loaded scorer."""
    extractor = next(layer for layer in model.layers if layer.name == "patch_features")
    bank_layer = model.get_layer("bank_distance")
    return extractor, bank_layer.bank(), bank_layer.threshold, bank_layer.scale


def extract_features(extractor, images, batch_size=16, progress=None):
    """uint8 (N, H, W, 3) -> float32 (N, h, w, D), in batches with progress callbacks."""
    out = []
    n = len(images)
    for i in range(0, n, batch_size):
        batch = np.asarray(images[i:i + batch_size], dtype=np.float32)
        out.append(np.asarray(extractor(batch, training=False)))
        if progress:
            progress(min(i + batch_size, n), n)
    if not out:
        return np.zeros((0,) + tuple(extractor.output.shape[1:]), np.float32)
    return np.concatenate(out, axis=0)
