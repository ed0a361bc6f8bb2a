"""Keras layers of the anomaly scorer, registered so ``model.keras`` reloads.

``import trainer.anomaly`` (or this module) must run before
``keras.models.load_model`` on an anomaly run's ``model.keras``.

Every layer lowers to TFLite ops on the Edge TPU's supported list (see
``edge/edgetpu_ops.json``): L2_NORMALIZATION (or SUM, MAXIMUM, RSQRT, MUL),
REDUCE_MIN / REDUCE_MAX and STRIDED_SLICE. The rest of the scorer is stock Keras layers (CONV_2D,
DEPTHWISE_CONV_2D, RESIZE_NEAREST_NEIGHBOR, MEAN, MUL, ADD, FULLY_CONNECTED
with a one-dimensional output, LOGISTIC).
"""
from __future__ import annotations

import numpy as np

from trainer.tfutil import import_keras

keras = import_keras()
PACKAGE = "edgeinspect"


@keras.saving.register_keras_serializable(package=PACKAGE)
class L2Normalize(keras.layers.Layer):
    """Unit-length patch features: cosine similarity becomes a plain dot product.

    ``lowering`` picks the TFLite ops, not the maths (float outputs are identical):

    * ``"rsqrt"`` (new models): ``x * rsqrt(max(sum(x * x), eps))`` as MUL, SUM, MAXIMUM, RSQRT, MUL,
      all on the Edge TPU's list. LiteRT's int8 L2_NORMALIZATION is a slow reference kernel: 0.46 ms
      on the scorer's 28x28x128 grid against 0.09 ms for these ops (interleaved, 2 threads), the
      scorer head's largest cost after the bank conv (0.58 ms); its int8 error on real patch features
      is no larger.
    * ``"l2_normalization"`` (the default, so models saved before ``lowering`` existed reload
      unchanged): ``tf.math.l2_normalize``, one L2_NORMALIZATION op (int8 output fixed to [-1, 1]).
    """

    LOWERINGS = ("l2_normalization", "rsqrt")

    def __init__(self, axis=-1, epsilon=1e-6, lowering="l2_normalization", **kwargs):
        super().__init__(**kwargs)
        if lowering not in self.LOWERINGS:
            raise ValueError(f"L2Normalize lowering {lowering!r}; choose from {self.LOWERINGS}")
        self.axis = axis
        self.epsilon = epsilon
        self.lowering = lowering

    def call(self, x):
        import tensorflow as tf

        if self.lowering == "rsqrt":
            # x * x, not tf.square: SQUARE is not on the Edge TPU's op list; MAXIMUM is l2_normalize's own epsilon
            ss = tf.reduce_sum(x * x, axis=self.axis, keepdims=True)
            return x * tf.math.rsqrt(tf.maximum(ss, self.epsilon))
        return tf.math.l2_normalize(x, axis=self.axis, epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "lowering": self.lowering}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GridScale(keras.layers.Layer):
    """(B, h, w, C) * a constant (h, w) mask: one MUL with a constant tensor.

    After nearest up-sampling and the zero-padded [1 2 1] filter, border cells hold only 3/4 (corners
    9/16) of their weight; dividing by that makes the result bilinear up-sampling exactly (error 3e-7),
    which the AUROC needs (synthetic nuts: 0.9960 without, 0.9993 with, as bilinear).
    """

    def __init__(self, mask=None, **kwargs):
        super().__init__(**kwargs)
        self.mask = None if mask is None else np.asarray(mask, np.float32).tolist()

    def build(self, input_shape):
        m = np.ones(tuple(input_shape[1:3]), np.float32) if self.mask is None else np.asarray(self.mask, np.float32)
        self.scale = self.add_weight(name="scale", shape=(1,) + m.shape + (1,), trainable=False,
                                     initializer=keras.initializers.Constant(m[None, :, :, None]))

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "mask": self.mask}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelMin(keras.layers.Layer):
    """(B, h, w, K) -> (B, h, w): the nearest bank row per patch (REDUCE_MIN over channels).

    The bank is a 1x1 CONV_2D over the feature grid, not a FULLY_CONNECTED on
    (B, h*w, D): the Edge TPU maps a fully-connected op only with a
    one-dimensional output, and a conv keeps the grid 3-D.
    """

    def call(self, x):
        return keras.ops.min(x, axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImageMax(keras.layers.Layer):
    """(B, h, w) map -> (B, 1): an image is as anomalous as its worst patch."""

    def call(self, x):
        return keras.ops.max(keras.ops.reshape(x, (-1, int(np.prod(x.shape[1:])))), axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FirstChannel(keras.layers.Layer):
    """(B, h, w, n) -> (B, h, w): the real map logit of an anchored grid (see ``model.MAP_ANCHOR``)."""

    def call(self, x):
        return x[..., 0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class First(keras.layers.Layer):
    """(B, n) -> (B, 1): the real value of an anchored vector (see ``model.ANCHOR``)."""

    def call(self, x):
        return x[:, :1]


@keras.saving.register_keras_serializable(package=PACKAGE)
class WeightedMean(keras.layers.Layer):
    """[features (B, h, w, D), weights (B, h, w)] -> (B, 1, 1, D): the map-weighted mean (MUL + MEAN).

    The combined model's defect-type descriptor (``trainer.anomaly.prototypes``): the weights are a
    softmax over the map, so the most anomalous cells describe the defect.
    """

    def call(self, inputs):
        f, w = inputs
        return keras.ops.mean(f * keras.ops.expand_dims(w, -1), axis=(1, 2), keepdims=True)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LeadingChannels(keras.layers.Layer):
    """(..., n) -> (..., count): drop trailing anchor channels; a slice keeps the tensor's int8 scale."""

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, x):
        return x[..., :self.count]

    def get_config(self):
        return {**super().get_config(), "count": self.count}
