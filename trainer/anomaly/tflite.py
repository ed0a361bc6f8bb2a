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
    """(scores (N,), maps (N, h, w)) from a TFLite scorer; dequantizes uint8/int8 outputs."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.preprocess import quantize_pixels
    from export.model_meta import output_indices

    it = Interpreter(model_content=model_bytes, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    where = output_indices(it, "anomaly")  # the exporter's own, shape-checked lookup
    scores, maps = [], []
    for img in np.asarray(images):
        it.set_tensor(inp["index"], quantize_pixels(img[None], inp["dtype"], inp["quantization"]))
        it.invoke()
        got = {}
        for key, i in where.items():
            d = outs[i]
            v = it.get_tensor(d["index"]).astype(np.float32)
            scale, zero = d["quantization"]
            if d["dtype"] in (np.uint8, np.int8) and scale:
                v = (v - zero) * scale
            got[key] = v
        scores.append(float(got["score"].ravel()[0]))
        maps.append(got["map"][0])
    return np.asarray(scores), np.asarray(maps)
