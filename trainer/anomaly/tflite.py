"""Quick TFLite conversion and inference of the anomaly scorer (float32 and full-integer int8).

The general exporter lives in ``export/``; this is the anomaly area's own check
that its graph converts and quantizes well (tests and benchmarks/anomaly_fit_time.py).
"""
from __future__ import annotations

import numpy as np


def convert(model, representative=None, int8=False, bias_correct=True, info=None):
    """TFLite bytes of a batch-1 copy of ``model``; ``int8`` = full-integer with uint8 input/output.

    ``representative``: uint8 (N, H, W, 3) good images (int8 only).
    ``bias_correct``: int8 only, remove each conv's mean error against the float32 twin
    (export/bias_correct.py); ``info`` (a dict) receives its summary.
    """
    from trainer.anomaly.model import rebuild_batch1
    from trainer.tfutil import import_tf

    tf = import_tf()
    b1 = rebuild_batch1(model)
    conv = tf.lite.TFLiteConverter.from_keras_model(b1)
    if int8:
        if representative is None or len(representative) == 0:
            raise ValueError("int8 conversion needs representative good images")
        rep = np.asarray(representative)

        def gen():
            for i in range(len(rep)):
                yield [rep[i:i + 1].astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
    data = conv.convert()
    if int8 and bias_correct:
        from export.bias_correct import correct_bias

        data, summary = correct_bias(data, tf.lite.TFLiteConverter.from_keras_model(b1).convert(), rep)
        if info is not None:
            info.update(summary)
    return data


def output_indices(interpreter):
    """{"score": i, "map": j}: positions in get_output_details(), found by shape (score is (1, 1))."""
    details = interpreter.get_output_details()
    idx = {}
    for i, d in enumerate(details):
        idx["score" if len(d["shape"]) == 2 and d["shape"][-1] == 1 else "map"] = i
    if set(idx) != {"score", "map"}:
        raise ValueError(f"not an anomaly scorer: outputs {[list(d['shape']) for d in details]}")
    return idx


def run(model_bytes, images, threads=None):
    """(scores (N,), maps (N, h, w)) from a TFLite scorer; dequantizes uint8/int8 outputs."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    where = output_indices(it)
    scores, maps = [], []
    for img in np.asarray(images):
        x = img[None]
        if inp["dtype"] in (np.uint8, np.int8):
            scale, zero = inp["quantization"]
            x = np.clip(np.rint(x.astype(np.float32) / (scale or 1.0) + zero),
                        np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max)
        it.set_tensor(inp["index"], x.astype(inp["dtype"]))
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
