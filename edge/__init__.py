"""edgeinspect edge runtime: TFLite interpreter + numpy + pillow, never TensorFlow.

Everything under ``edge`` must import on a Raspberry Pi that has only the
``edge`` extra installed; ``tests/unit/test_no_tensorflow.py`` enforces it.
"""

__version__ = "0.1.0"
