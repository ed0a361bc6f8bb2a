"""The ROI as a layer: ignored pixels replaced by one constant inside the graph (trainer/data/roi.py).

``x * mask + fill * (1 - mask)`` on raw pixels lowers to one MUL and one ADD with constant tensors,
so every variant stays full-integer and Edge TPU-mappable, and a ``.tflite`` enforces the mask alone.
Grey 127.5 is 0 after the model's pixel scaling: the backbone sees "nothing" there, identically on
every part, so the ignored area can neither look anomalous nor carry a classifier's evidence.
"""
from __future__ import annotations

import numpy as np

from trainer.tfutil import import_keras

keras = import_keras()
FILL = 127.5


@keras.saving.register_keras_serializable(package="edgeinspect")
class RoiFill(keras.layers.Layer):
    def __init__(self, height, width, fill=FILL, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.fill = int(height), int(width), float(fill)
        self.mask = self.add_weight(name="mask", shape=(1, self.height, self.width, 1), initializer="ones",
                                    trainable=False)

    def set_mask(self, mask):
        self.mask.assign(np.asarray(mask, np.float32).reshape(1, self.height, self.width, 1))
        return self

    def call(self, x):
        return x * self.mask + (1.0 - self.mask) * self.fill

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "fill": self.fill}


def apply_roi(x, mask, name="roi"):
    """``x`` (raw pixels, (None, h, w, 3)) with the ROI baked in; ``mask`` None returns ``x``."""
    if mask is None:
        return x
    h, w = np.asarray(mask).shape
    layer = RoiFill(h, w, name=name)
    out = layer(x)
    layer.set_mask(mask)
    return out
