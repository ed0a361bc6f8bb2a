"""Does the exported file decide like the Keras model? Measured on held-out images, every export.

Agreement is the fraction of images with the same verdict at the run's
threshold (and, for a model with a defect-type head - the classifier's, or an
anomaly model's - the same defect type on images the float model calls
defective, since only there is the type shown). Each side's
AUROC / balanced accuracy come from ``trainer.metrics.binary_report`` so the
majority baseline travels with them.
"""
from __future__ import annotations

import math

import numpy as np

from export.errors import ExportError
from trainer.metrics import binary_report

MIN_AGREEMENT = 0.98
# The verdict drives the reject gate; the defect-type head is trained on a handful of defects and its
# near-ties flip under int8, so its agreement has its own (reported, still enforced) bar.
MIN_TYPE_AGREEMENT = 0.95
MAX_AUROC_DROP = 0.01


def open_interpreter(model, threads=2):
    """A quiet LiteRT interpreter for a .tflite path or bytes (workstation-side checks)."""
    from ai_edge_litert.interpreter import Interpreter

    from export.quiet import captured_output

    with captured_output():  # the runtime announces its XNNPACK delegate on stderr
        if isinstance(model, (bytes, bytearray)):
            return Interpreter(model_content=bytes(model), num_threads=threads)
        return Interpreter(model_path=str(model), num_threads=threads)


def _dequantize(x, detail):
    scale, zp = detail["quantization"]
    if np.dtype(detail["dtype"]) == np.float32 or not scale:
        return x.astype(np.float32)
    return (x.astype(np.float32) - zp) * np.float32(scale)


def run_tflite(model, images, meta=None, threads=2, task=None) -> dict:
    """Outputs of a .tflite (path or bytes) on uint8 images (N,H,W,3): {"score": (N,), "types"/"map": ...}
    (an anomaly model with a defect-type head has both "map" and "types").

    ``meta`` needs only ``{"outputs": {name: output index}}``; without it the outputs of ``task``
    ("classifier" or "anomaly") are found in the file (export.model_meta.output_indices).
    """
    from edge.preprocess import quantize_pixels  # how the device feeds pixels

    it = open_interpreter(model, threads)
    it.allocate_tensors()
    if meta is None:
        from export.model_meta import output_indices

        meta = {"outputs": output_indices(it, task)}
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    res = {k: [] for k in meta["outputs"]}
    for img in images:
        it.set_tensor(inp["index"], quantize_pixels(img[None], inp["dtype"], inp["quantization"]))
        it.invoke()
        for key, i in meta["outputs"].items():
            res[key].append(_dequantize(it.get_tensor(outs[i]["index"]), outs[i])[0])
    out = {k: np.stack(v) if v else np.zeros((0,)) for k, v in res.items()}
    out["score"] = out["score"].reshape(len(images))
    return out


def run_keras(model, images, task, batch_size=16) -> dict:
    """Float reference outputs with the same keys as :func:`run_tflite`."""
    pred = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    if task == "classifier":
        return {"score": np.asarray(pred["defect"], np.float32).reshape(-1), "types": np.asarray(pred["type"], np.float32)}
    out = {"score": np.asarray(pred["score"], np.float32).reshape(-1), "map": np.asarray(pred["map"], np.float32)}
    if "type" in pred:  # an anomaly model with a defect-type head
        out["types"] = np.asarray(pred["type"], np.float32)
    return out


def _spearman(a, b):
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _clean(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def compare(ref: dict, got: dict, labels, threshold, task, got_threshold=None) -> dict:
    """Parity numbers of one variant (``got``, deciding at its own ``got_threshold``) against the float model."""
    y = np.asarray(labels, int)
    got_threshold = threshold if got_threshold is None else float(got_threshold)
    s_ref, s_got = ref["score"].astype(np.float64), got["score"].astype(np.float64)
    v_ref, v_got = s_ref >= threshold, s_got >= got_threshold
    rep_ref = binary_report(y, s_ref, threshold)
    rep_got = binary_report(y, s_got, got_threshold)
    diff = np.abs(s_ref - s_got)
    out = {
        "n": int(len(y)),
        "threshold": got_threshold,
        "agreement": float(np.mean(v_ref == v_got)) if len(y) else float("nan"),
        "max_abs_score_diff": float(diff.max()) if len(y) else float("nan"),
        "mean_abs_score_diff": float(diff.mean()) if len(y) else float("nan"),
        "spearman": _spearman(s_ref, s_got),
        "auroc": rep_got["auroc"],
        "auroc_float": rep_ref["auroc"],
        "auroc_drop": rep_ref["auroc"] - rep_got["auroc"],
        "balanced_accuracy": rep_got["balanced_accuracy"],
        "balanced_accuracy_float": rep_ref["balanced_accuracy"],
        "majority_baseline": rep_got["majority_baseline"],
        "metrics": rep_got,
    }
    out["flips"] = flip_summary(y, s_ref, v_ref, v_got, threshold)
    if "types" in ref:  # the classifier's type head, or an anomaly model's
        if "types" not in got:
            raise ExportError(f"the float {task} model has a type output but the converted file has none; "
                              "re-export the run")
        shown = v_ref if v_ref.any() else np.ones_like(v_ref)
        t_ref, t_got = ref["types"].argmax(1), got["types"].argmax(1)
        out["type_agreement"] = float(np.mean(t_ref[shown] == t_got[shown])) if len(y) else float("nan")
        out["type_agreement_all"] = float(np.mean(t_ref == t_got)) if len(y) else float("nan")
    if "map" in ref:
        out["map_max_abs_diff"] = float(np.abs(ref["map"] - got["map"]).max()) if len(y) else float("nan")
    return out


def flip_summary(y, s_ref, v_ref, v_got, threshold) -> dict:
    """Which verdicts flipped and how sure the float model was of them: a gate failure made of borderline
    parts (float scores right at the threshold, e.g. real castings under int8) reads differently from one
    of confident calls."""
    flip = v_ref != v_got
    out = {"n": int(flip.sum()), "defective": int((flip & (y == 1)).sum()), "good": int((flip & (y == 0)).sum()),
           "now_defective": int((flip & v_got).sum()), "now_good": int((flip & ~v_got).sum())}
    if flip.any():
        out["max_float_distance"] = float(np.abs(s_ref[flip] - threshold).max())
    return out


def judge(result: dict, min_agreement=MIN_AGREEMENT, max_auroc_drop=MAX_AUROC_DROP,
          min_type_agreement=MIN_TYPE_AGREEMENT) -> dict:
    """Adds "status" (OK / FAILED) and the reasons to a :func:`compare` result."""
    reasons = []
    for key, name, bar in (("agreement", "verdict agreement", min_agreement),
                           ("type_agreement", "defect-type agreement", min_type_agreement)):
        v = result.get(key)
        if v is not None and not math.isnan(v) and v < bar:
            f = result.get("flips") if key == "agreement" else None
            why = (f": {f['n']} flipped ({f['defective']} defective, {f['good']} good), every float score within "
                   f"{f['max_float_distance']:.3f} of the threshold") if f and f.get("n") else ""
            reasons.append(f"{name} {v:.4f} < {bar}{why}")
    drop = result.get("auroc_drop")
    if drop is not None and not math.isnan(drop) and drop > max_auroc_drop:
        reasons.append(f"AUROC drop {drop:.4f} > {max_auroc_drop}")
    result["status"] = "FAILED" if reasons else "OK"
    result["reasons"] = reasons
    return result


def jsonable(result: dict) -> dict:
    return {k: (_clean(v) if not isinstance(v, dict) else v) for k, v in result.items()}


def _fmt(v, spec):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def format_table(report: dict) -> str:
    """The human view of export_report.json."""
    head = ("Variant", "Size MB", "Threshold", "Agree", "Type agree", "AUROC", "Bal.acc", "max|dscore|", "Spearman", "Status")
    rows = [head]
    for name, v in report["variants"].items():
        p = v.get("parity") or {}
        rows.append((name, _fmt(v.get("size_mb"), ".2f"), _fmt(p.get("threshold"), ".4f"), _fmt(p.get("agreement"), ".4f"),
                     _fmt(p.get("type_agreement"), ".4f"), _fmt(p.get("auroc"), ".4f"),
                     _fmt(p.get("balanced_accuracy"), ".4f"), _fmt(p.get("max_abs_score_diff"), ".4f"),
                     _fmt(p.get("spearman"), ".4f"), v.get("status", "?")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    ref = report.get("float_reference") or {}
    if ref:
        lines.append(
            f"Keras float on {report.get('parity_split')} (n={ref.get('n')}, {ref.get('n_defective')} defective): "
            f"AUROC {_fmt(ref.get('auroc'), '.4f')} | balanced acc {_fmt(ref.get('balanced_accuracy'), '.4f')} | "
            f"majority baseline {_fmt(ref.get('majority_baseline'), '.4f')} (always '{ref.get('majority_class')}')")
        for w in ref.get("warnings", []):
            lines.append(f"  WARNING: {w}")
    lines.append("Threshold = the variant's own decision point, measured on its scores of the val/calibration images; "
                 "Agree = share of identical verdicts (float at the run threshold, the variant at its own); Type agree = identical defect type "
                 "where Keras calls a defect; max|dscore| = largest score difference vs Keras.")
    return "\n".join(lines)
