"""MobileNetV2 backbone with ImageNet weights from Keras's cache, a file, or none.

``weights`` may be:
  * ``"imagenet"``: Keras downloads (or finds in ``$KERAS_HOME/models``) the official file;
  * a path to a ``.h5`` / ``.weights.h5`` file (offline and air-gapped plants); a
    full (include_top) file works too, its top is dropped;
  * ``None`` / ``"none"``: random init (tests, or training from scratch).

Batch-norm layers are always frozen: the offline weights carry batch-norm folded
into the convolutions (see shared/weights/README.md), and with few images batch
statistics are noise anyway.
"""
from __future__ import annotations

import os

from edge.errors import EdgeInspectError


class WeightsError(EdgeInspectError):
    pass


OFFLINE_HINT = (
    "download the official file once where there is internet, or pass an offline file with "
    "--weights PATH (e.g. mobilenet_v2_1.0_224_imagenet_no_top.weights.h5), or set KERAS_HOME "
    "to a folder whose models/ holds Keras's cached MobileNetV2 files"
)


def normalize_weights(weights):
    if weights is None or (isinstance(weights, str) and weights.lower() in ("none", "")):
        return None
    if isinstance(weights, str) and weights.lower() == "imagenet":
        return "imagenet"
    return os.fspath(weights)


def freeze_batchnorm(model):
    import keras

    for layer in model._flatten_layers(include_self=False) if hasattr(model, "_flatten_layers") else model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def build_backbone(alpha: float = 1.0, input_size=224, weights="imagenet"):
    """MobileNetV2 without top, input float pixels already scaled to [-1, 1]."""
    from trainer.tfutil import import_keras

    keras = import_keras()

    from edge.preprocess import as_hw

    h, w = as_hw(input_size)
    weights = normalize_weights(weights)
    kwargs = dict(input_shape=(h, w, 3), alpha=alpha, include_top=False)
    if weights is None:
        base = keras.applications.MobileNetV2(weights=None, **kwargs)
    elif weights == "imagenet":
        try:
            base = keras.applications.MobileNetV2(weights="imagenet", **kwargs)
        except Exception as exc:  # Keras raises several types for a failed fetch
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "fetch" in text.lower() or "url" in text.lower() or "download" in text.lower() or isinstance(exc, OSError):
                raise WeightsError(
                    f"ImageNet weights for MobileNetV2 alpha={alpha} could not be downloaded ({text}); {OFFLINE_HINT}"
                ) from None
            raise
    else:
        base = _from_file(weights, alpha, kwargs)
    base.trainable = False
    freeze_batchnorm(base)
    return base


def _from_file(path, alpha, kwargs):
    import keras

    if not os.path.isfile(path):
        raise WeightsError(f"{path}: weights file not found; {OFFLINE_HINT}")
    import warnings

    base = keras.applications.MobileNetV2(weights=None, **kwargs)
    try:
        with warnings.catch_warnings():
            # Keras warns per layer before raising on a mismatched file; the raise is what we report.
            warnings.simplefilter("ignore")
            base.load_weights(path)
        return base
    except Exception as first:  # noqa: BLE001 - retried as a full-model file below
        first_text = str(first).splitlines()[0] if str(first) else type(first).__name__
    # A full ImageNet file (include_top=True): load it, then copy matching layers.
    try:
        full = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), alpha=alpha, include_top=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full.load_weights(path)
        by_name = {layer.name: layer for layer in full.layers}
        copied = 0
        for layer in base.layers:
            src = by_name.get(layer.name)
            if src is not None and layer.weights:
                layer.set_weights(src.get_weights())
                copied += 1
        if copied == 0:
            raise ValueError("no layer names matched")
        return base
    except Exception:  # noqa: BLE001
        raise WeightsError(
            f"{path}: not MobileNetV2 alpha={alpha} weights ({first_text}); pass weights saved from "
            f"keras.applications.MobileNetV2(alpha={alpha}) or use --alpha matching the file"
        ) from None
