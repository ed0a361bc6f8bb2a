"""Run one variant over the test set: the Keras float model, or a TFLite file through edgeinspect's EdgeModel."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.timing import latency_stats, timed
from edge.progress import as_progress


def split_outputs(out, task):
    """Keras output dict (the run-folder contract names them) -> (scores (B,), types (B,K) or None, maps or None).
    An anomaly model may carry a defect-type head ("type") beside its map."""
    if task == "classifier":
        return np.asarray(out["defect"]).reshape(-1), np.asarray(out["type"]), None
    types = np.asarray(out["type"]) if "type" in out else None
    return np.asarray(out["score"]).reshape(-1), types, np.asarray(out["map"])


def bench_keras(run_dir, info, ts, warmup, repeats, progress=True):
    say = as_progress(progress)
    task = info.get("task", "classifier")
    labels = list(info.get("labels") or [])
    from trainer.layers import load_model

    t0 = time.perf_counter()
    model = load_model(Path(run_dir) / "model.keras")
    load_s = time.perf_counter() - t0
    batch = np.stack(ts.images).astype(np.float32)
    model.predict(batch[:1], verbose=0)  # build the predict function before timing
    t0 = time.perf_counter()
    out = model.predict(batch, batch_size=32, verbose=0)
    batch_s = time.perf_counter() - t0
    scores, types, maps = split_outputs(out, task)
    pred_types = None
    if types is not None and types.ndim == 2 and labels and types.shape[1] == len(labels) and len(labels) > 1:
        from edge.prediction import defect_type

        # the runtime's rule for a defective part (types are scored on caught defects only)
        pred_types = [defect_type(labels, row, True)[0] for row in types]
    singles = [x[None] for x in batch]
    say(f"    keras: model.predict on one image x{repeats} (after {warmup} warm-up)")
    ms = timed(lambda x: model.predict(x, verbose=0), singles, warmup, repeats)
    return {
        "scores": scores, "maps": maps, "pred_types": pred_types,
        "latency": latency_stats(ms),
        "batch": {"n": len(batch), "total_s": batch_s, "ms_per_image": 1000.0 * batch_s / len(batch),
                  "throughput_ips": len(batch) / batch_s if batch_s > 0 else float("nan"), "batch_size": 32},
        "load_s": load_s, "loader": "trainer.layers.load_model",
    }


def edge_model(path, threads, backend=None):
    import warnings

    from edge.runtime import EdgeModel

    with warnings.catch_warnings():
        # An Edge TPU file without a device falls back to its CPU twin; bench reports that as a skip.
        warnings.simplefilter("ignore")
        return EdgeModel(str(path), threads=threads, backend=backend)


def bench_tflite(path, ts, threads, warmup, repeats, progress=True, model=None):
    """edgeinspect's own path (EdgeModel.predict_array) on every test image, then warm latency and the
    bare ``invoke()`` of the same interpreter (same threads), so the table shows the wrapper's overhead."""
    say = as_progress(progress)
    t0 = time.perf_counter()
    model = model or edge_model(path, threads)
    load_s = time.perf_counter() - t0
    preds = [model.predict_array(img) for img in ts.images]
    scores = np.array([float(p.score) for p in preds])
    maps = None
    if preds and all(p.anomaly_map is not None for p in preds):
        maps = np.stack([np.asarray(p.anomaly_map, dtype=np.float32) for p in preds])
    pred_types = [p.defect_type for p in preds] if model.has_types else None
    ms = timed(model.predict_array, ts.images, warmup, repeats)
    say(f"    bare interpreter invoke() x{repeats}")
    x = model.prepare(ts.images[0])
    inv = timed(lambda _: model.invoke_raw(x), [None], warmup, repeats)
    return {
        "scores": scores, "maps": maps, "pred_types": pred_types, "meta": dict(model.meta),
        "threshold": float(model.threshold), "latency": latency_stats(ms), "invoke": latency_stats(inv),
        "load_s": load_s, "backend": model.backend, "threads": model.threads,
    }
