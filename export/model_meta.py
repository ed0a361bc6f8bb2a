"""The metadata dict every exported .tflite carries (schema: ``edge.metadata``).

Output indices and quantization are read from the *converted* interpreter, not
assumed: the converter is free to reorder a dict's outputs.
"""
from __future__ import annotations

import numpy as np

from edge import __version__
from edge.atomic import utc_stamp
from edge.metadata import SCHEMA_VERSION
from edge.preprocess import describe
from export.errors import ExportError

# Keras output name -> metadata output key, per task. An anomaly model may carry a defect-type head
# ("type", softmax over labels, issue 13); its key is the classifier's, "types".
OUTPUT_KEYS = {"classifier": {"defect": "score", "type": "types"},
               "anomaly": {"score": "score", "map": "map", "type": "types"}}
# The metadata keys each task must have, and those it may have.
REQUIRED = {"classifier": ("score", "types"), "anomaly": ("score", "map")}
OPTIONAL = {"classifier": (), "anomaly": ("types",)}


def _signature_outputs(interpreter):
    """Keras output name -> position in get_output_details(), from the serving signature (if any)."""
    try:
        sigs = interpreter._get_full_signature_list()  # the only API that gives tensor indices per name
    except Exception:  # noqa: BLE001 - older interpreters lack it; shapes are the fallback
        return {}
    if not sigs:
        return {}
    outs = next(iter(sigs.values())).get("outputs", {})
    pos = {d["index"]: i for i, d in enumerate(interpreter.get_output_details())}
    return {name: pos[idx] for name, idx in outs.items() if idx in pos}


def _by_shape(shapes, task, n_labels):
    """Metadata key -> output position from the shapes alone: the score is (1, 1), a type head (1, K),
    an anomaly map (1, h, w) or (1, h, w, 1)."""
    out = {}
    for i, s in enumerate(shapes):
        if task == "anomaly" and len(s) >= 3:
            key = "map"
        elif int(np.prod(s)) == 1 and not (task == "classifier" and n_labels == 1 and "score" in out):
            key = "score"
        else:
            key = "types"
        out.setdefault(key, i)
    return out


def output_indices(interpreter, task: str, n_labels: int | None = None) -> dict:
    """{"score": i, "types": j} (classifier), {"score": i, "map": j} or {"score": i, "map": j, "types": k}
    (anomaly, with a defect-type head), checked by shape. ``n_labels``: run.json's label count, which a
    type head must match."""
    details = interpreter.get_output_details()
    shapes = [tuple(int(v) for v in d["shape"]) for d in details]
    want, extra = REQUIRED[task], OPTIONAL[task]
    if not len(want) <= len(details) <= len(want) + len(extra):
        expected = "defect, type" if task == "classifier" else "score, map and optionally type"
        raise ExportError(f"converted {task} model has {len(details)} outputs {shapes}; expected {expected}; "
                          "check model.keras")
    names = OUTPUT_KEYS[task]
    out = {names[k]: v for k, v in _signature_outputs(interpreter).items() if k in names}
    if len(out) != len(details) or len(set(out.values())) != len(out):
        out = _by_shape(shapes, task, n_labels)
    if (not set(want) <= set(out) <= set(want + extra) or len(out) != len(details)
            or len(set(out.values())) != len(out)):
        raise ExportError(f"cannot tell the converted model's outputs apart (shapes {shapes}); "
                          f"expected {want + extra if len(details) > len(want) else want}")
    s = shapes[out["score"]]
    if int(np.prod(s)) != 1:
        raise ExportError(f"score output has shape {s}; expected (1, 1) - was the model rebuilt with batch 1?")
    if "types" in out:
        t = shapes[out["types"]]
        if len(t) != 2:
            raise ExportError(f"type output has shape {t}; expected (1, K) with K = the run.json labels")
        if n_labels and t[-1] != n_labels:
            raise ExportError(f"type output has {t[-1]} classes but run.json lists {n_labels} labels")
    if task == "anomaly" and len(shapes[out["map"]]) != 3:
        raise ExportError(f"anomaly map output has shape {shapes[out['map']]}; expected (1, h, w)")
    return out


def model_version(info: dict, variant: str) -> str:
    sha = (info.get("manifest_sha256") or "nomanifest")[:8]
    return f"{info.get('name', 'run')}-{sha}-{variant}"


def build_metadata(info: dict, interpreter, variant: str) -> dict:
    """The edgeinspect metadata dict for a converted model (see edge/metadata.py)."""
    task = info["task"]
    labels = list(info["labels"])
    h, w = (int(v) for v in info["input_size"])
    inp = interpreter.get_input_details()[0]
    scale, zp = inp["quantization"]
    # every type head (the classifier's, an anomaly model's) has one column per label
    outs = output_indices(interpreter, task, len(labels))
    details = interpreter.get_output_details()
    oq = {}
    for key, i in outs.items():
        s, z = details[i]["quantization"]
        oq[key] = [float(s), int(z)]
    return {
        "format": "edgeinspect",
        "schema_version": SCHEMA_VERSION,
        "task": task,
        "labels": labels,
        "input": {"height": h, "width": w, "channels": 3, "dtype": np.dtype(inp["dtype"]).name,
                  "semantics": "raw_pixels",
                  # float inputs take raw 0..255 floats: scale 1 / zero point 0 says exactly that.
                  "scale": float(scale) if scale else 1.0, "zero_point": int(zp)},
        "preprocess": describe((h, w)),
        "outputs": outs,
        "output_quantization": oq,
        "threshold": float(info["threshold"]),
        "threshold_policy": info.get("threshold_policy"),
        "variant": variant,
        "model_version": model_version(info, variant),
        "manifest_sha256": info.get("manifest_sha256"),
        "run": info.get("name"),
        "roi": info.get("roi"),  # {"file", "sha256", "coverage", "grid"} when trained with --roi, else None
        "created": utc_stamp(),
        "edgeinspect_version": __version__,
    }
