"""Custom Keras layers of edgeinspect models, and the one way to save and to load a model.

Every custom layer is registered under the ``edgeinspect`` package so that
``model.keras`` files load anywhere this module was imported first (export and
bench call :func:`load_model`, which does that). The classifier itself uses only
built-in layers (a 1x1 depthwise conv for the pixel scaling, MobileNetV2, pooling, Dense), which all convert to
TFLite and the Edge TPU; a custom layer must do the same before it lands here.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edge.errors import ModelError
from trainer.tfutil import import_keras


def pixel_scaling(name):
    """Raw 0..255 pixels -> ``x * SCALE + OFFSET`` ([-1, 1]) as a frozen 1x1 depthwise conv, not ``Rescaling``.

    Why: TFLite turns ``Rescaling`` into MUL then ADD, and int8 calibration gives the MUL's output a
    [-1, 2] range, so the backbone saw the pixels on 170 levels instead of 256 (an input rounding of
    ~1.5 grey levels that every later layer carries). One DEPTHWISE_CONV_2D (weight 1/127.5, bias -1,
    both exact in int8's per-channel scales) keeps every level at output scale 2/255 and maps to the
    Edge TPU; in float it is the same ``x * w + b``. Measured on castings, int8 error of the anomaly
    extractor as a share of the good spread: global 0.176 -> 0.148, patch 0.189 -> 0.153.
    """
    keras = import_keras()
    from edge.preprocess import OFFSET, SCALE

    layer = keras.layers.DepthwiseConv2D(1, use_bias=True, name=name,
                                         depthwise_initializer=keras.initializers.Constant(SCALE),
                                         bias_initializer=keras.initializers.Constant(OFFSET))
    layer.trainable = False
    return layer


def save_model(model, path):
    """``model.keras`` staged beside its final name, then written with ``edge.atomic`` (fsync + rename):
    readers never see half a zip, and a failed save leaves no stray file."""
    from edge.atomic import atomic_write_bytes

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name  # Keras insists on the .keras suffix
        model.save(staged)
        atomic_write_bytes(path, staged.read_bytes())
    return path


def load_model(path, compile=False):
    """Load a ``model.keras`` written by ``edgeinspect train``; a clear error if it is not one."""
    keras = import_keras()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: model file not found; train one with 'edgeinspect train'")
    register_all()
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{path}: not a loadable Keras model ({text}); re-run 'edgeinspect train'") from None


def register_all():
    """Import every module that registers layers (anomaly mode keeps its own in trainer.anomaly.layers)."""
    import importlib

    importlib.import_module("trainer.roi_layers")
    try:
        importlib.import_module("trainer.anomaly.layers")
    except ModuleNotFoundError as exc:
        if exc.name not in ("trainer.anomaly", "trainer.anomaly.layers"):
            raise
