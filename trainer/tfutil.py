"""Import TensorFlow/Keras quietly and only when a command needs them."""
from __future__ import annotations

import os


def _quiet():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_tf():
    _quiet()
    try:
        import tensorflow as tf
    except ImportError:
        from edge.errors import EdgeInspectError

        raise EdgeInspectError(
            "this step needs TensorFlow, which is not installed: pip install 'edgeinspect[train]'"
        ) from None
    return tf


def import_keras():
    import_tf()
    import keras

    return keras
