"""The TensorFlow-free data layer: datasets (``dataset``), splits (``split``), synthetic parts (``synth``),
the ``edgeinspect data`` command (``cli``). It imports only ``edge``; everything above reads data through it.
"""
