"""Keras layers of the anomaly scorer, registered so ``model.keras`` reloads.

``import trainer.anomaly`` (or this module) must run before
``keras.models.load_model`` on an anomaly run's ``model.keras``.

The scorer is built from ops that TFLite int8 and the Edge TPU handle well:
L2 normalisation (fixed [-1, 1] range), one FULLY_CONNECTED against the
memory bank (constant weights), REDUCE_MIN, LOGISTIC (fixed [0, 1] range).
"""
from __future__ import annotations

import numpy as np

from trainer.tfutil import import_keras

keras = import_keras()
PACKAGE = "edgeinspect"


@keras.saving.register_keras_serializable(package=PACKAGE)
class L2Normalize(keras.layers.Layer):
    """Unit-length patch features: cosine similarity becomes a plain dot product."""

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon

    def call(self, x):
        import tensorflow as tf

        # tf.math.l2_normalize lowers to TFLite's L2_NORMALIZATION op (int8 output fixed to [-1, 1]).
        return tf.math.l2_normalize(x, axis=self.axis, epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BankDistance(keras.layers.Layer):
    """(B, P, D) unit features -> (B, P) normalised nearest-neighbour distance to the bank.

    For unit vectors f and bank rows m_j, ``1 - <f, m_j>`` is half the squared
    Euclidean distance, so the nearest neighbour is one matrix product and a
    reduction. The calibration affine ``(d - t) / s`` is folded into the matrix
    product's weights and bias *before* the reduction: the matmul output's int8
    range is then calibrated over distances to every bank row (good patches
    far from most rows), which covers the distances a defect reaches even
    though calibration only sees good images. A reduction keeps its input's
    scale and the logistic has a fixed [0, 1] output, so no later tensor is
    clipped to the range of good images.
    """

    def __init__(self, bank_size, feature_dim, threshold=0.5, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.bank_size = int(bank_size)
        self.feature_dim = int(feature_dim)
        self.threshold = float(threshold)
        self.scale = float(scale)

    def build(self, input_shape):
        # Stored already scaled: kernel = -bank^T / s, bias = (1 - t) / s.
        self.kernel = self.add_weight(name="kernel", shape=(self.feature_dim, self.bank_size),
                                      initializer="zeros", trainable=False)
        self.bias = self.add_weight(name="bias", shape=(self.bank_size,), initializer="zeros", trainable=False)

    def set_bank(self, bank):
        bank = np.asarray(bank, dtype=np.float32)
        if bank.shape != (self.bank_size, self.feature_dim):
            raise ValueError(f"bank shape {bank.shape} != {(self.bank_size, self.feature_dim)}")
        self.kernel.assign(-bank.T / np.float32(self.scale))
        self.bias.assign(np.full((self.bank_size,), (1.0 - self.threshold) / self.scale, np.float32))

    def bank(self):
        """The unit-norm bank rows (K, D), recovered from the folded weights."""
        return -np.asarray(self.kernel.numpy()).T * np.float32(self.scale)

    def call(self, x):
        z = keras.ops.matmul(x, self.kernel) + self.bias
        return keras.ops.min(z, axis=-1)

    def get_config(self):
        return {**super().get_config(), "bank_size": self.bank_size, "feature_dim": self.feature_dim,
                "threshold": self.threshold, "scale": self.scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImageMax(keras.layers.Layer):
    """(B, h, w) map -> (B, 1): an image is as anomalous as its worst patch."""

    def call(self, x):
        return keras.ops.max(keras.ops.reshape(x, (-1, int(np.prod(x.shape[1:])))), axis=-1, keepdims=True)
