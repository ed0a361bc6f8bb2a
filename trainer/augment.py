"""Training-time augmentation of raw 0..255 pixels (never applied to val, test, calibration or parity images)."""
from __future__ import annotations

import numpy as np


def build_augmenter(augment: dict, seed: int):
    """Random flips/rotation/zoom/brightness/contrast on raw 0..255 pixels (training only)."""
    from trainer.tfutil import import_keras

    keras = import_keras()
    layers = []
    if augment.get("flip"):
        layers.append(keras.layers.RandomFlip("horizontal_and_vertical", seed=seed + 1))
    if augment.get("rotation"):
        layers.append(keras.layers.RandomRotation(augment["rotation"], fill_mode="reflect", seed=seed + 2))
    if augment.get("zoom"):
        z = float(augment["zoom"])
        layers.append(keras.layers.RandomZoom((-z, z), fill_mode="reflect", seed=seed + 3))
    if augment.get("brightness"):
        layers.append(keras.layers.RandomBrightness(augment["brightness"], value_range=(0, 255), seed=seed + 4))
    if augment.get("contrast"):
        layers.append(keras.layers.RandomContrast(augment["contrast"], value_range=(0, 255), seed=seed + 5))
    return keras.Sequential(layers, name="augment") if layers else None


def augmented(x_uint8, augmenter, batch=64):
    out = np.empty(x_uint8.shape, np.float32)
    for i in range(0, len(x_uint8), batch):
        out[i:i + batch] = np.asarray(augmenter(x_uint8[i:i + batch].astype(np.float32), training=True))
    return out
