"""Workstation side: datasets, synthetic parts, MobileNetV2 training.

Modules that need TensorFlow import it inside functions, so ``trainer.dataset``,
``trainer.split`` and ``trainer.synth`` work on a machine without it.
"""
