"""Export a trained run to deployable TFLite files (float32, float16, dynamic-range, int8, Edge TPU).

``export.convert.export_run`` is the API; ``export.cli:export`` the command.
TensorFlow is imported inside functions only.
"""
