"""The classifier: raw pixels -> in-graph scaling -> MobileNetV2 -> two heads.

Structure (layer names are part of the contract: export and training look them up)::

    pixels (B,H,W,3) float32 0..255
      -> scale  x/127.5 - 1 (trainer.layers.pixel_scaling)   # so the deployed model takes raw uint8 pixels
      -> MobileNetV2 backbone (nested Model, every BatchNormalization frozen)
      -> pool   GlobalAveragePooling2D
      -> dropout
      -> {"defect": Dense(1, sigmoid), "type": Dense(K, softmax)}   # float32 under mixed precision, L2 HEAD_L2

The saved model decides at 0.5: after the threshold is chosen on val,
:func:`shift_decision_to_half` folds ``-logit(threshold)`` into the defect head's
bias, so ``defect = sigmoid(logit(p) - logit(threshold))`` with no extra layer or op.

Training splits the same layers into a *frozen bottom* (run once per image to
cache activations, :func:`split_at_block`) and a *trainable top* that shares
weights with the full model, so whatever the top learns is already in the model
that gets saved.
"""
from __future__ import annotations

from trainer.tfutil import import_keras

N_BLOCKS = 17  # MobileNetV2 inverted-residual blocks: expanded_conv (0) + block_1..block_16
DEFECT, TYPE = "defect", "type"
# L2 on the head kernels. int8 export moves the pooled features by ~0.1 (mean, on features of mean 0.43);
# without it the heads lean on a few features and the int8 file flipped 2/98 verdicts and 15% of defect
# types on synthetic hazelnut 224; 1e-2: 1/98 and 9%, float test AUROC 0.985 -> 0.988 (5e-2: types 12%).
HEAD_L2 = 1e-2


def build_classifier(num_types, alpha=1.0, input_size=224, weights="imagenet", dropout=0.2, batch_size=None,
                     head_l2=HEAD_L2, roi=None):
    """Keras model with outputs ``{"defect": (B,1), "type": (B,num_types)}`` on raw 0..255 pixels."""
    keras = import_keras()
    from edge.preprocess import as_hw
    from trainer.backbone import build_backbone

    if num_types < 2:
        raise ValueError("the type head needs 'good' plus at least one defect type")
    h, w = as_hw(input_size)
    pixels = keras.Input(shape=(h, w, 3), batch_size=batch_size, dtype="float32", name="pixels")
    from trainer.roi_layers import apply_roi

    # ``roi`` (h, w) 0/1: ignored pixels become one grey inside the graph (trainer/data/roi.py)
    from trainer.layers import pixel_scaling

    x = pixel_scaling("scale")(apply_roi(pixels, roi))
    base = build_backbone(alpha=alpha, input_size=(h, w), weights=weights)
    # training=False: BatchNorm stays in inference mode even while top blocks fine-tune.
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = _heads(keras, x, num_types, head_l2)
    return keras.Model(pixels, outputs, name="edgeinspect_classifier")


def _heads(keras, x, num_types, head_l2=HEAD_L2):
    # dtype float32: under mixed_float16 a float16 sigmoid/softmax saturates and loses the threshold.
    reg = (lambda: keras.regularizers.L2(head_l2)) if head_l2 else (lambda: None)
    defect = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=DEFECT, kernel_regularizer=reg())(x)
    types = keras.layers.Dense(num_types, activation="softmax", dtype="float32", name=TYPE, kernel_regularizer=reg())(x)
    return {DEFECT: defect, TYPE: types}


def shift_decision_to_half(model, threshold, k=1.0):
    """Make ``defect >= 0.5`` mean ``raw defect >= threshold``: ``sigmoid((logit(p) - logit(threshold)) * k)``.

    Folded into the defect Dense layer (bias - logit(t), both times ``k``) rather than
    appended as a layer: the TFLite graph, int8 included, keeps one FULLY_CONNECTED +
    LOGISTIC with no extra requantised op, old model files need no new class, and a
    uint8 sigmoid output (steps of 1/256) is finest at 0.5, where verdicts are decided,
    instead of near a threshold like 0.02 with ~6 steps below it. ``k = 1`` keeps
    scores a plain logit shift (ranking and AUROC unchanged). Mutates and returns ``model``.
    """
    import numpy as np

    if not 0.0 < threshold < 1.0 or k <= 0:
        raise ValueError(f"threshold must be in (0, 1) and k > 0, got {threshold}, {k}")
    head = model.get_layer(DEFECT)
    kernel, bias = head.get_weights()
    t = np.float64(threshold)
    shift = np.log(t) - np.log1p(-t)
    head.set_weights([(kernel.astype(np.float64) * k).astype(kernel.dtype),
                      ((bias.astype(np.float64) - shift) * k).astype(bias.dtype)])
    return model


def backbone_of(model):
    keras = import_keras()
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"{model.name}: no nested MobileNetV2 backbone found")


def set_fine_tune_blocks(model, n_blocks):
    """Unfreeze the top ``n_blocks`` inverted-residual blocks (+ the final 1x1 conv); BN stays frozen.

    The offline ImageNet weights fold BatchNorm into the convolutions (identity
    statistics), so a BN layer in training mode would wreck them; keeping every BN
    ``trainable=False`` also makes Keras 3 run it in inference mode.
    """
    keras = import_keras()
    base = backbone_of(model)
    first = N_BLOCKS - n_blocks
    base.trainable = n_blocks > 0
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        elif n_blocks > 0:
            layer.trainable = _block_index(layer.name) >= first
    return model


def _block_index(name):
    """Block number of a backbone layer; stem = -1, the top 1x1 conv = N_BLOCKS (always with the top)."""
    if name.startswith("expanded_conv"):
        return 0
    if name.startswith("block_"):
        return int(name.split("_")[1])
    if name.startswith(("Conv_1", "out_relu")):
        return N_BLOCKS
    return -1


def _pixels_in(model):
    """The model's pixel stage: its ROI fill (when trained with --roi) then the pixel scaling."""
    scale = model.get_layer("scale")
    names = {layer.name for layer in model.layers}
    if "roi" not in names:
        return scale
    roi = model.get_layer("roi")
    return lambda x: scale(roi(x))


def split_at_block(model, n_blocks):
    """(bottom, top) sharing weights with ``model``, cut at the input of the first fine-tuned block.

    ``bottom(pixels)`` gives the cached activations (pooled features when
    ``n_blocks == 0``); ``top(activations)`` gives the same dict of outputs as
    ``model(pixels)``. Training ``top`` trains ``model``.
    """
    keras = import_keras()
    base = backbone_of(model)
    scale = _pixels_in(model)
    pool, dropout = model.get_layer("pool"), model.get_layer("dropout")
    heads = model.get_layer(DEFECT), model.get_layer(TYPE)

    pixels = keras.Input(shape=model.input.shape[1:], dtype="float32", name="pixels")
    if n_blocks <= 0:
        bottom = keras.Model(pixels, pool(base(scale(pixels), training=False)), name="bottom")
        feat = keras.Input(shape=bottom.output.shape[1:], name="features")
        x = dropout(feat)
        return bottom, keras.Model(feat, {DEFECT: heads[0](x), TYPE: heads[1](x)}, name="top")
    if n_blocks >= N_BLOCKS:
        raise ValueError("fine-tuning every block leaves nothing to cache; train on images instead")
    first = N_BLOCKS - n_blocks
    cut = base.get_layer(f"block_{first}_expand").input
    lower = keras.Model(base.input, cut, name="backbone_bottom")
    upper = keras.Model(cut, base.output, name="backbone_top")
    bottom = keras.Model(pixels, lower(scale(pixels), training=False), name="bottom")
    act = keras.Input(shape=cut.shape[1:], name="activations")
    x = dropout(pool(upper(act, training=False)))
    return bottom, keras.Model(act, {DEFECT: heads[0](x), TYPE: heads[1](x)}, name="top")


def pooled_features(model, n_blocks):
    """Cached activations at the cut of :func:`split_at_block` -> pooled features (frozen upper blocks)."""
    keras = import_keras()
    base = backbone_of(model)
    cut = base.get_layer(f"block_{N_BLOCKS - n_blocks}_expand").input
    upper = keras.Model(cut, base.output, name="backbone_top")
    act = keras.Input(shape=cut.shape[1:], name="activations")
    return keras.Model(act, model.get_layer("pool")(upper(act, training=False)), name="pooled")
