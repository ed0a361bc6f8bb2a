"""Workstation side: MobileNetV2 training (classifier and anomaly) on top of the TF-free ``trainer.data``.

Modules that need TensorFlow import it inside functions; ``trainer.data`` never does, so datasets,
splits and synthetic parts work on a machine without it. This file imports nothing: ``trainer.data``
sits below the rest of ``trainer`` (tests/unit/test_layers.py).
"""
