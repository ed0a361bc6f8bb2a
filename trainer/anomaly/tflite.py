"""Quick TFLite conversion and inference of the anomaly scorer (float32 and full-integer int8).

The general exporter lives in ``export/``; this is the anomaly area's own check
that its graph converts and quantizes well (tests and benchmarks/anomaly_fit_time.py).
"""
from __future__ import annotations

import numpy as np


def convert(model, representative=None, int8=False, bias_correct=True, info=None):
    """TFLite bytes of a batch-1 copy of ``model``; ``int8`` = full-integer with uint8 input/output.

    Uses the exporter's own conversion (``export.convert.convert``), so this check
    measures exactly what ships. ``representative``: uint8 (N, H, W, 3) good images
    (int8 only). ``bias_correct``: int8 only, remove each conv's mean error against
    the float32 twin (export/bias_correct.py); ``info`` (a dict) receives its summary.
    """
    from export.convert import convert as export_convert
    from trainer.anomaly.model import rebuild_batch1

    b1 = rebuild_batch1(model)
    if not int8:
        return export_convert(b1, "fp32")
    if representative is None or len(representative) == 0:
        raise ValueError("int8 conversion needs representative good images")
    rep = np.asarray(representative)
    data = export_convert(b1, "int8", rep)
    if bias_correct:
        from export.bias_correct import correct_bias

        data, summary = correct_bias(data, export_convert(b1, "fp32"), rep)
        if info is not None:
            info.update(summary)
    return data


def run(model_bytes, images, threads=None):
    """(scores (N,), maps (N, h, w)) from a TFLite scorer; dequantizes uint8/int8 outputs.

    Runs through the exporter's parity runner, so this check sees what export measures.
    """
    from export.model_meta import output_indices
    from export.parity import open_interpreter, run_tflite

    where = output_indices(open_interpreter(model_bytes), "anomaly")
    out = run_tflite(model_bytes, np.asarray(images), {"outputs": where}, threads=threads)
    return np.asarray(out["score"]), np.asarray(out["map"])
