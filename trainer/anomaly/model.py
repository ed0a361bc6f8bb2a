"""The anomaly scorer as one Keras graph: raw pixels -> {"score": (B, 1), "map": (B, h, w)}.

Graph (converts to TFLite float32 and full-integer int8; every op is on the Edge TPU's list)::

    raw pixels -> pixel scaling (trainer.layers.pixel_scaling) -> MobileNetV2 taps
      patch path:  L2 per tap -> deeper tap x2 (nearest + [1 2 1] + border scale = bilinear) -> concat
                   -> 3x3 box filter -> L2 -> bank as a 1x1 CONV_2D (RELU6) -> min over channels
                   -> 1x1 conv -> sigmoid -> "map";  max -> patch evidence (image level)
      global path: pooled mean and mean of squares of ``global_tap`` -> whitening (1x1 conv)
                   -> squares -> sum (1x1 conv) -> Mahalanobis evidence
      score = sigmoid(max(patch evidence, global evidence))   (each normalised by out-of-fold good scores)

The map decides at 0.5 per cell with the patch path's own threshold; the score decides at 0.5 with
the combined threshold chosen for the false-reject target (``trainer.anomaly.calibrate``).

Why the detours: the Edge TPU maps FULLY_CONNECTED only with a one-dimensional output (the bank is
a conv), and bilinear resizing may be refused (a nearest x2 followed by a fixed depthwise [1 2 1]
filter and a constant border scale is bilinear up-sampling exactly). int8 tensors are calibrated on good images
only, so each evidence vector carries two constant *anchor* entries (+A, -A): the tensor's range
then covers scores far above any good image instead of clipping every defect at the good maximum.
"""
from __future__ import annotations

import numpy as np

from trainer.anomaly import layers as L
from trainer.tfutil import import_keras

DEFAULT_TAPS = ("block_5_add", "block_12_add")  # strides 8 and 16: mid-level texture + part structure
ANCHOR = 4.0      # logit anchors: the score logit's int8 range is [-8, 8] (0.03 logit steps at the decision)
MAP_ANCHOR = 8.0  # the map's logit range [-8, 8]: cells far from any good patch read ~1, not the good maximum
Z_ANCHOR = 5.0    # whitened components keep [-10, 10] (good images sit within about +-5)
L2_LOWERING = "rsqrt"  # layers.L2Normalize: LiteRT runs int8 L2_NORMALIZATION with a slow reference kernel


def build_feature_extractor(alpha=1.0, input_size=224, weights="imagenet", taps=DEFAULT_TAPS, pool=3,
                            tap_norm=True, global_tap=None, moments=1, roi=None, probe_tap=None,
                            l2_lowering=L2_LOWERING, global_levels=None):
    """Raw pixels (None, H, W, 3) -> [unit patch features (None, h, w, D)] (+ the pooled mean (and, with
    ``moments=2``, mean of squares) (None, 1, 1, C) of ``global_tap`` when given) (+ the pooled mean of
    ``probe_tap``, last, for the combined mode's supervised probe, ``trainer.anomaly.stack``).

    ``global_levels`` = (scale (C,), anchor): the pooled mean is of ``scale * global_tap`` (see
    :func:`global_levels`), with an anchor channel setting the pooled tensor's int8 range."""
    keras = import_keras()
    from edge.preprocess import as_hw
    from trainer.backbone import build_backbone

    h, w = as_hw(input_size)
    base = build_backbone(alpha=alpha, input_size=(h, w), weights=weights)
    names = {layer.name for layer in base.layers}
    wanted = list(taps) + ([global_tap] if global_tap else []) + ([probe_tap] if probe_tap else [])
    missing = [t for t in wanted if t not in names]
    if missing:
        from edge.errors import EdgeInspectError

        raise EdgeInspectError(f"anomaly taps {missing} are not MobileNetV2 layers; use e.g. {list(DEFAULT_TAPS)}")
    tapper = keras.Model(base.input, [base.get_layer(t).output for t in wanted], name="backbone_taps")
    tapper.trainable = False

    inp = keras.Input((h, w, 3), dtype="float32", name="image")
    from trainer.roi_layers import apply_roi

    # ``roi`` (h, w) 0/1: ignored pixels are one grey on every part, so no patch or pooled statistic there
    # can differ from training (trainer/data/roi.py)
    from trainer.layers import pixel_scaling

    x = pixel_scaling("scale_pixels")(apply_roi(inp, roi))
    outs = tapper(x, training=False)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    feats, g = outs[:len(taps)], (outs[len(taps)] if global_tap else None)
    probe = outs[-1] if probe_tap else None
    gh, gw = feats[0].shape[1], feats[0].shape[2]
    grid = []
    for i, f in enumerate(feats):
        # Unit length per tap: each depth weighs the same whatever its activation range, and
        # every tap leaves int8 with the same fixed [-1, 1] scale, so the concat loses nothing.
        if tap_norm:
            f = L.L2Normalize(lowering=l2_lowering, name=f"unit_tap_{i}")(f)
        fh, fw = f.shape[1], f.shape[2]
        if (fh, fw) != (gh, gw):
            if gh % fh or gw % fw or gh // fh != gw // fw:
                from edge.errors import EdgeInspectError

                raise EdgeInspectError(f"anomaly tap {taps[i]} ({fh}x{fw}) is not an integer fraction of the "
                                       f"first tap's grid {gh}x{gw}; order taps from shallow to deep")
            f = _upsample(keras, f, gh // fh, f"to_grid_{i}")
        grid.append(f)
    x = keras.layers.Concatenate(axis=-1, name="taps")(grid) if len(grid) > 1 else grid[0]
    if pool and pool > 1:
        x = _local_sum(keras, x, pool, "local_pool")
    x = L.L2Normalize(lowering=l2_lowering, name="unit_features")(x)
    outputs = [x]
    if g is not None and global_levels is not None:
        outputs.append(_levelled_mean(keras, g, *global_levels))
    elif g is not None:
        outputs.append(keras.layers.GlobalAveragePooling2D(keepdims=True, name="global_mean")(g))
        if moments >= 2:
            sq = keras.layers.Multiply(name="global_square")([g, g])
            outputs.append(keras.layers.GlobalAveragePooling2D(keepdims=True, name="global_meansq")(sq))
    if probe is not None:
        outputs.append(keras.layers.GlobalAveragePooling2D(keepdims=True, name="probe_mean")(probe))
    return keras.Model(inp, outputs, name="patch_features")


LEVEL_QUANTILE = 0.5  # channels whose good pooled maximum is above the median channel's are scaled down to it
LEVEL_HEADROOM = 2.0  # the pooled tensor's int8 range reaches twice that level: defects above good parts fit


def levels_for(pooled):
    """Good images' pooled means (N, C) -> (scale (C,), anchor) for :func:`_levelled_mean`.

    The pooled vector is one int8 tensor, so its step is set by its largest channel: on real castings
    one channel's mean reaches 3.4 where the median channel's good spread is 0.035, and that rounding
    alone was 0.11 of the spread in the median channel, 0.36 at the 90th percentile (more than the whole
    backbone's int8 error, 0.10 / 0.22). Scaling the loud channels down to the median channel's level
    (never up: amplifying quiet channels lets their pixel peaks set a coarser range) makes every channel's
    step about its own range's; the constant anchor channel leaves room above the good maximum. The
    Gaussian is fitted on the unlevelled means and ``build_scorer`` folds the scale into the whitening,
    so the float model is the same one."""
    m = np.asarray(pooled, np.float64).max(axis=0)
    level = float(np.quantile(m, LEVEL_QUANTILE))
    if level <= 0:
        level = float(m.max()) or 1.0
    scale = np.where(m > level, level / np.maximum(m, 1e-12), 1.0).astype(np.float32)
    return scale, LEVEL_HEADROOM * level


def level_scale(extractor):
    """The per-channel scale a levelled extractor pools ``global_tap`` with, or None."""
    for layer in extractor.layers:
        if layer.name == "global_level":
            return np.asarray(layer.get_weights()[0], np.float64).reshape(-1)
    return None


def _levelled_mean(keras, g, scale, anchor):
    """(B, h, w, C) -> (B, 1, 1, C) mean of ``scale * g``: a 1x1 depthwise conv, a constant anchor channel
    (a 1x1 conv with zero weights) concatenated, MEAN, and the anchor sliced off (same int8 scale)."""
    c = int(g.shape[-1])
    level = keras.layers.DepthwiseConv2D(1, use_bias=False, name="global_level")
    const = keras.layers.Conv2D(1, 1, name="global_anchor")
    x = keras.layers.Concatenate(axis=-1, name="global_levelled")([level(g), const(g)])
    level.set_weights([np.asarray(scale, np.float32).reshape(1, 1, c, 1)])
    const.set_weights([np.zeros((1, 1, c, 1), np.float32), np.array([anchor], np.float32)])
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="global_mean")(x)
    return L.LeadingChannels(c, name="global_mean_levelled")(x)


def _local_sum(keras, x, k, name):
    """Local neighbourhood: a patch feature describes its k x k surroundings (PatchCore).

    A k x k average pooling followed by the L2 normalisation, computed as a fixed depthwise box filter:
    the average's border cells divide by fewer cells, a per-cell positive factor the L2 normalisation
    removes, so the features are the same (float: to 1e-6). int8 AVERAGE_POOL_2D with 'same' padding
    is a slow path in LiteRT (0.4 ms of the scorer's ~3.4 ms at 28x28x128); the depthwise conv is 0.04 ms.
    """
    conv = keras.layers.DepthwiseConv2D(k, padding="same", use_bias=False, trainable=False, name=name)
    out = conv(x)
    conv.set_weights([np.full((k, k, x.shape[-1], 1), 1.0 / (k * k), np.float32)])
    return out


def _upsample(keras, f, factor, name):
    """Bilinear x``factor`` as nearest + a fixed separable triangle filter (Edge TPU-safe)."""
    c = f.shape[-1]
    # Resizing lowers to RESIZE_NEAREST_NEIGHBOR; UpSampling2D lowers to a 5-D repeat the Edge TPU refuses.
    up = keras.layers.Resizing(f.shape[1] * factor, f.shape[2] * factor, interpolation="nearest",
                               name=name + "_nearest")(f)
    k1 = np.convolve(np.ones(factor), np.ones(factor)) / factor ** 2  # [1 2 1]/4 for x2
    kernel = np.outer(k1, k1)[:, :, None, None] * np.ones((1, 1, c, 1))
    conv = keras.layers.DepthwiseConv2D(len(k1), padding="same", use_bias=False, trainable=False, name=name + "_smooth")
    out = conv(up)
    conv.set_weights([kernel.astype(np.float32)])
    # zero padding leaves border cells short of weight; the bilinear resize it replaces clamps instead
    h, w = up.shape[1], up.shape[2]
    weight = np.convolve(np.ones(h), k1, mode="same")[:, None] * np.convolve(np.ones(w), k1, mode="same")[None, :]
    return L.GridScale(1.0 / weight, name=name)(out)


def patch_map(keras, f, params):
    """Unit patch features -> (nearest bank distance in ``unit``s (B, h, w), the map (B, h, w))."""
    bank = np.asarray(params["bank"], dtype=np.float32)
    k, d = bank.shape
    t, s, unit = float(params["t"]), float(params["s"]), float(params["unit"])
    # d / unit = (1 - <f, m>) / unit per bank row, clamped to [0, 6] by a fused RELU6: int8 steps are
    # then 6 * unit / 255 of distance wherever the distances lie, and distances past 6 * unit (far above
    # any threshold) all read "very far" (measured: 2.6x finer than a range calibrated over every row).
    bank_conv = keras.layers.Conv2D(k, 1, activation="relu6", name="bank")
    near = L.ChannelMin(name="nearest")(bank_conv(f))
    bank_conv.set_weights([(-bank.T / unit)[None, None].astype(np.float32), np.full((k,), 1.0 / unit, np.float32)])
    # the map's logit (d - t) / s, a 1x1 conv on the (B, h, w, 1) grid, anchored like the evidence so
    # defect cells are not clipped at the highest logit a good image reached in calibration
    to_logit = keras.layers.Conv2D(3, 1, name="map_logit")
    z = to_logit(keras.layers.Reshape(tuple(near.shape[1:]) + (1,), name="nearest_grid")(near))
    to_logit.set_weights([np.array([[[[unit / s, 0.0, 0.0]]]], np.float32),
                          np.array([-t / s, MAP_ANCHOR, -MAP_ANCHOR], np.float32)])
    amap = keras.layers.Activation("sigmoid", name="map")(L.FirstChannel(name="map_logit_real")(z))
    return near, amap


def build_scorer(extractor, params, name="anomaly_scorer"):
    """Extractor + calibrated heads -> the deployable model (dict outputs).

    ``params`` (``trainer.anomaly.calibrate.scorer_params``): ``bank`` (K, D), ``t``/``s`` (patch
    distance -> map logit), ``patch`` (a, b: zmax -> half-logit), and when the extractor has a global
    path ``mu``/``w`` (whitening) and ``global`` (a, b: squared distance -> half-logit).
    """
    keras = import_keras()
    inp = keras.Input(extractor.input.shape[1:], dtype="float32", name="image")
    outs = extractor(inp)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    near, amap = patch_map(keras, outs[0], params)
    evidence = []
    if "patch" in params:
        evidence.append(_anchored(keras, L.ImageMax(name="patch_max")(near), params["patch"], "patch_evidence"))
    if len(outs) > 1 and "global" in params:
        scale = level_scale(extractor)
        if scale is not None:  # the heads were fitted on x, the graph pools y = scale * x
            params = dict(params, w=np.asarray(params["w"]) / scale[None, :].astype(np.float32),
                          mu=np.asarray(params["mu"]) * scale.astype(np.float32))
        evidence.append(_global_evidence(keras, outs[1:], params))
    # The stronger evidence decides: a casting's texture shows in the global statistics, a bottle's
    # chip in one patch; a sum let the weak one dilute the strong one (castings recall 0.53 -> 0.9).
    e = keras.layers.Maximum(name="evidence")(evidence) if len(evidence) > 1 else evidence[0]
    score = keras.layers.Activation("sigmoid", name="score")(L.First(name="logit")(e))
    return keras.Model(inp, {"score": score, "map": amap}, name=name)


def _anchored(keras, x, ab, name):
    """(B, 1) -> (B, 3) = [a x + b, +A, -A]: one FULLY_CONNECTED with a one-dimensional output."""
    a, b = (float(v) for v in ab)
    dense = keras.layers.Dense(3, name=name)
    out = dense(x)
    dense.set_weights([np.array([[a, 0.0, 0.0]], np.float32), np.array([b, ANCHOR, -ANCHOR], np.float32)])
    return out


def _global_evidence(keras, stats, params):
    """Whitened pooled statistics -> (B, 3) anchored logit of the squared Mahalanobis distance."""
    mu, w = np.asarray(params["mu"], np.float32), np.asarray(params["w"], np.float32)
    c = stats[0].shape[-1]
    dz = w.shape[0]
    anchors = np.array([Z_ANCHOR, -Z_ANCHOR], np.float32)
    # z = sum_i W_i (stat_i - mu_i); 1x1 convs quantize per output channel, so the whitening rows
    # (scales 1/sqrt(lambda) over orders of magnitude) each keep their own scale.
    parts = []
    for i, src in enumerate(stats):
        conv = keras.layers.Conv2D(dz + 2, 1, name=f"whiten_{i}")
        parts.append(conv(src))
        kern = np.concatenate([w[:, i * c:(i + 1) * c].T, np.zeros((c, 2), np.float32)], axis=1)[None, None]
        bias = np.concatenate([-(w @ mu) if i == 0 else np.zeros(dz, np.float32), anchors])
        conv.set_weights([kern.astype(np.float32), bias.astype(np.float32)])
    z = keras.layers.Add(name="whitened")(parts) if len(parts) > 1 else parts[0]
    sq = keras.layers.Multiply(name="whitened_square")([z, z])
    a, b = (float(v) for v in params["global"])
    total = keras.layers.Conv2D(3, 1, name="global_sum")
    out = total(sq)
    kern = np.zeros((dz + 2, 3), np.float32)
    kern[:dz, 0] = a
    total.set_weights([kern[None, None], np.array([b, ANCHOR, -ANCHOR], np.float32)])
    return keras.layers.Reshape((3,), name="global_evidence")(out)


def scorer_params(model):
    """(extractor, params) of a built/loaded scorer: the ``build_scorer`` parameters read back from
    its weights, for ``reference.score_and_map``."""
    extractor = next(layer for layer in model.layers if layer.name == "patch_features")
    kernel, bias = model.get_layer("bank").get_weights()
    kernel = kernel[0, 0]                     # (D, K) = -bank^T / unit, bias = 1 / unit, unit bank rows
    unit = float(1.0 / bias[0])
    k1, b1 = model.get_layer("map_logit").get_weights()  # unit / s, -t / s (+ anchors)
    s = float(unit / k1[0, 0, 0, 0])
    params = {"bank": (-kernel.T * unit).astype(np.float32), "unit": unit, "t": float(-b1[0] * s), "s": s}
    names = {layer.name for layer in model.layers}
    if "patch_evidence" in names:
        k, b = model.get_layer("patch_evidence").get_weights()
        params["patch"] = (float(k[0, 0]), float(b[0]))
    if "global_sum" in names:
        convs = [model.get_layer(f"whiten_{i}").get_weights() for i in range(2) if f"whiten_{i}" in names]
        b0 = convs[0][1]
        dz = b0.shape[-1] - 2
        w = np.concatenate([k[0, 0, :, :dz].T for k, _ in convs], axis=1)
        params["w"] = w
        params["mu"] = np.linalg.lstsq(w, -b0[:dz], rcond=None)[0].astype(np.float32)
        k, b = model.get_layer("global_sum").get_weights()
        params["global"] = (float(k[0, 0, 0, 0]), float(b[0]))
    return extractor, params


def extract_features(extractor, images, batch_size=16, progress=None):
    """uint8 (N, H, W, 3) -> list of float32 arrays [(N, h, w, D)] (+ [(N, C), (N, C)] global stats)."""
    out = None
    n = len(images)
    for i in range(0, n, batch_size):
        batch = np.asarray(images[i:i + batch_size], dtype=np.float32)
        res = extractor(batch, training=False)
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        res = [np.asarray(r).reshape(len(batch), -1) if j else np.asarray(r) for j, r in enumerate(res)]
        out = [[r] for r in res] if out is None else [o + [r] for o, r in zip(out, res)]
        if progress:
            progress(min(i + batch_size, n), n)
    if out is None:
        shapes = [tuple(o.shape[1:]) for o in (extractor.outputs if isinstance(extractor.outputs, list)
                                              else [extractor.output])]
        return [np.zeros((0,) + (s if j == 0 else (int(np.prod(s)),)), np.float32) for j, s in enumerate(shapes)]
    return [np.concatenate(o, axis=0) for o in out]
