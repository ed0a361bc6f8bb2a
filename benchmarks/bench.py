"""Every variant of a run on the same test split, in one process: accuracy and latency side by side.

Why one process and one split: a table that mixes numbers from different days,
machines or splits cannot tell a quantisation loss from noise. Here the Keras
float model, each TFLite variant and (when present) the Edge TPU model see the
same decoded images, are timed the same way on the same warm machine, and are
scored with ``trainer.metrics`` so AUROC, balanced accuracy and the
majority-class baseline always appear together.

What is measured, per variant:

* accuracy: AUROC and balanced accuracy with bootstrap 95% intervals, precision,
  recall, F1, accuracy beside the majority baseline, the confusion matrix at the
  model's own threshold, recall per defect type, agreement with the float model;
* warm latency of edgeinspect's own path (``EdgeModel.predict_array`` on decoded
  RGB arrays, so file decoding is excluded; Keras: ``model.predict`` on one image)
  after warm-up: p50/p95/p99 and throughput;
* reference points for the runtime's limit: the bare interpreter's ``invoke()``
  and the ``litert-benchmark`` tool, both on the same file and thread count;
* cold start (load + first result) and peak RSS, each measured in a fresh child
  process so one variant's memory never inflates another's;
* file size.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import EdgeInspectError

# Order is the table's order: float reference first, then smaller/faster files.
VARIANTS = ("keras", "fp32", "fp16", "dynamic", "int8", "edgetpu")
TITLES = {
    "keras": "Keras float",
    "fp32": "TFLite float32",
    "fp16": "TFLite float16",
    "dynamic": "TFLite dynamic-range",
    "int8": "TFLite int8",
    "edgetpu": "Edge TPU int8",
}
EXPORT_FILES = {
    "fp32": "model_fp32.tflite",
    "fp16": "model_fp16.tflite",
    "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite",
    "edgetpu": "model_int8_edgetpu.tflite",
}
# Regression rules for --compare (see compare()): an AUROC drop, or a same-run latency ratio this much worse.
AUROC_DROP = 0.02
LATENCY_RATIO = 1.5
SCHEMA = "edgeinspect-bench/1"


class BenchError(EdgeInspectError):
    pass


def _echo(progress, msg):
    if progress:
        try:
            import click

            click.echo(msg)
        except ImportError:  # pragma: no cover
            print(msg, flush=True)


# ------------------------------------------------------------------------------------ test split
@dataclass
class TestSet:
    root: Path
    paths: list
    labels: np.ndarray          # 1 = defective
    types: list                 # "good" or the defect type
    images: list = field(default_factory=list)   # decoded RGB uint8 at the model's input size
    size: tuple = (224, 224)


def _read_manifest(run_dir: Path) -> dict:
    p = run_dir / "manifest.json"
    if not p.is_file():
        raise BenchError(f"{run_dir}: run has no manifest.json, so there is no test split to benchmark on; re-run training")
    from trainer.split import load_manifest  # the owner's reader checks the hash and layout

    return load_manifest(p)


def _resolve_root(manifest: dict, run_dir: Path) -> Path:
    root = Path(manifest.get("root") or ".")
    for cand in (root, run_dir / root, Path.cwd() / root):
        if cand.is_dir():
            return cand.resolve()
    raise BenchError(
        f"{run_dir / 'manifest.json'}: dataset root {root} not found; run bench from the folder training ran in "
        f"or move the dataset back to {root}"
    )


def load_test_set(run_dir, size, limit=None) -> TestSet:
    """The manifest's ``test`` split, decoded once through ``edge.imageio`` for every variant."""
    from edge.imageio import load_image

    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    root = _resolve_root(manifest, run_dir)
    files = [f for f in manifest.get("files", []) if f.get("split") == "test"]
    if not files:
        raise BenchError(f"{run_dir / 'manifest.json'}: the manifest has no 'test' images; split with a test part")
    if limit:
        files = files[: int(limit)]
    ts = TestSet(root=root, paths=[str(root / f["path"]) for f in files],
                 labels=np.array([int(f["label"]) for f in files]), types=[f.get("type", "?") for f in files],
                 size=tuple(size))
    ts.images = [load_image(p, ts.size) for p in ts.paths]
    return ts


# ------------------------------------------------------------------------------------ metrics
def fast_auroc(y, s):
    """AUROC by the rank-sum formula (ties get average ranks); same value as scikit-learn, ~50x faster,
    which matters for 1000 bootstrap resamples per variant."""
    y = np.asarray(y).astype(int).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over tied runs
    i = 0
    n = len(s)
    while i < n:
        j = i
        while j + 1 < n and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def fast_balanced_accuracy_at(threshold):
    def fn(y, s):
        y = np.asarray(y).astype(int)
        pred = np.asarray(s) >= threshold
        pos, neg = y == 1, y == 0
        tpr = pred[pos].mean() if pos.any() else float("nan")
        tnr = (~pred[neg]).mean() if neg.any() else float("nan")
        return float(np.nanmean([tpr, tnr]))

    return fn


def per_type_recall(types, pred) -> dict:
    """Fraction of each defect type called defective (and, for 'good', the fraction passed)."""
    out = {}
    types = list(types)
    pred = np.asarray(pred).astype(bool)
    for t in sorted(set(types)):
        idx = np.array([x == t for x in types])
        hit = pred[idx] if t != "good" else ~pred[idx]
        out[t] = {"n": int(idx.sum()), "recall" if t != "good" else "pass_rate": float(hit.mean())}
    return out


def accuracy_block(y, types, scores, threshold, *, n_boot=1000, seed=0, ref_pred=None, ref_scores=None,
                   pred_types=None) -> dict:
    """binary_report (with its honesty warnings) + bootstrap CIs + per-type recall + agreement."""
    from trainer.metrics import binary_report, bootstrap_ci

    y = np.asarray(y).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    rep = binary_report(y, s, threshold)
    rep["auroc_ci95"] = bootstrap_ci(y, s, fast_auroc, n=n_boot, seed=seed)
    rep["balanced_accuracy_ci95"] = bootstrap_ci(y, s, fast_balanced_accuracy_at(threshold), n=n_boot, seed=seed)
    pred = s >= threshold
    rep["per_type"] = per_type_recall(types, pred)
    if pred_types is not None:
        defect_idx = [i for i, t in enumerate(types) if t != "good" and pred[i]]
        if defect_idx:
            rep["type_accuracy"] = float(np.mean([pred_types[i] == types[i] for i in defect_idx]))
            rep["type_accuracy_n"] = len(defect_idx)
    if ref_pred is not None:
        rep["agreement"] = float(np.mean(np.asarray(ref_pred).astype(bool) == pred))
    if ref_scores is not None:
        d = np.abs(np.asarray(ref_scores, dtype=np.float64) - s)
        rep["score_abs_diff"] = {"mean": float(d.mean()), "max": float(d.max())}
    return rep


def latency_stats(ms) -> dict:
    ms = np.asarray(ms, dtype=np.float64)
    if ms.size == 0:
        return {}
    mean = float(ms.mean())
    return {
        "n": int(ms.size),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": mean,
        "min": float(ms.min()),
        "throughput_ips": 1000.0 / mean if mean > 0 else float("nan"),
    }


def _timed(fn, inputs, warmup, repeats):
    """Call fn on inputs (cycling) warmup times untimed, then repeats times timed; returns ms list."""
    n = len(inputs)
    for i in range(warmup):
        fn(inputs[i % n])
    out = []
    for i in range(repeats):
        x = inputs[i % n]
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


# ------------------------------------------------------------------------------------ Keras
def load_keras_model(run_dir):
    """The run's model.keras via the exporter's loader (it registers the custom layers)."""
    try:
        from export.convert import load_run_model
    except ImportError:
        load_run_model = None
    if load_run_model is not None:
        return load_run_model(run_dir), "export.convert.load_run_model"
    # The exporter has not landed in this checkout: load plainly (works for models without custom layers).
    from trainer.tfutil import import_keras

    keras = import_keras()
    for mod in ("trainer.layers", "trainer.anomaly.layers"):
        try:
            __import__(mod)
        except ImportError:
            pass
    return keras.models.load_model(Path(run_dir) / "model.keras", compile=False), "keras.models.load_model"


def split_outputs(out, task):
    """Keras output (dict or list) -> (scores (B,), types (B,K) or None, maps (B,h,w) or None)."""
    if isinstance(out, dict):
        if task == "classifier":
            return np.asarray(out["defect"]).reshape(-1), np.asarray(out.get("type")), None
        return np.asarray(out["score"]).reshape(-1), None, np.asarray(out.get("map"))
    outs = [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    score = next(o for o in outs if o.ndim == 2 and o.shape[-1] == 1)
    other = [o for o in outs if o is not score]
    if task == "classifier":
        return score.reshape(-1), (other[0] if other else None), None
    return score.reshape(-1), None, (other[0] if other else None)


def bench_keras(run_dir, info, ts, warmup, repeats, progress=True):
    task = info.get("task", "classifier")
    labels = list(info.get("labels") or [])
    t0 = time.perf_counter()
    model, loader = load_keras_model(run_dir)
    load_s = time.perf_counter() - t0
    batch = np.stack(ts.images).astype(np.float32)
    model.predict(batch[:1], verbose=0)  # build the predict function before timing
    t0 = time.perf_counter()
    out = model.predict(batch, batch_size=32, verbose=0)
    batch_s = time.perf_counter() - t0
    scores, types, maps = split_outputs(out, task)
    pred_types = None
    if types is not None and types.ndim == 2 and labels and types.shape[1] == len(labels) and len(labels) > 1:
        pred_types = [labels[1 + int(np.argmax(row[1:]))] for row in types]
    singles = [x[None] for x in batch]
    _echo(progress, f"    keras: model.predict on one image x{repeats} (after {warmup} warm-up)")
    ms = _timed(lambda x: model.predict(x, verbose=0), singles, warmup, repeats)
    return {
        "scores": scores, "maps": maps, "pred_types": pred_types,
        "latency": latency_stats(ms),
        "batch": {"n": len(batch), "total_s": batch_s, "ms_per_image": 1000.0 * batch_s / len(batch),
                  "throughput_ips": len(batch) / batch_s if batch_s > 0 else float("nan"), "batch_size": 32},
        "load_s": load_s, "loader": loader,
    }


# ------------------------------------------------------------------------------------ TFLite
def _edge_model(path, threads):
    import warnings

    from edge.runtime import EdgeModel

    with warnings.catch_warnings():
        # An Edge TPU file without a device falls back to its CPU twin; bench reports that as a skip.
        warnings.simplefilter("ignore")
        return EdgeModel(str(path), threads=threads)


def bench_tflite(path, ts, threads, warmup, repeats, progress=True, model=None):
    """edgeinspect's own path (EdgeModel.predict_array) on every test image, then warm latency and the
    bare ``invoke()`` of the same interpreter (same threads), so the table shows the wrapper's overhead."""
    t0 = time.perf_counter()
    model = model or _edge_model(path, threads)
    load_s = time.perf_counter() - t0
    preds = [model.predict_array(img) for img in ts.images]
    scores = np.array([float(p.score) for p in preds])
    maps = None
    if preds and all(p.anomaly_map is not None for p in preds):
        maps = np.stack([np.asarray(p.anomaly_map, dtype=np.float32) for p in preds])
    pred_types = [p.defect_type for p in preds] if model.task == "classifier" else None
    ms = _timed(model.predict_array, ts.images, warmup, repeats)
    _echo(progress, f"    bare interpreter invoke() x{repeats}")
    x = model.prepare(ts.images[0])
    inv = _timed(lambda _: model.invoke_raw(x), [None], warmup, repeats)
    return {
        "scores": scores, "maps": maps, "pred_types": pred_types, "meta": dict(model.meta),
        "threshold": float(model.threshold), "latency": latency_stats(ms), "invoke": latency_stats(inv),
        "load_s": load_s, "backend": model.backend, "threads": model.threads,
    }


def _lb_cmd(path, threads):
    return f"litert-benchmark --model {Path(path).name} --num_threads {threads}"


def litert_benchmark_ms(path, threads, warmup, repeats, timeout=300):
    """Average ms from the ``litert-benchmark`` tool that ships with ai-edge-litert (or why not)."""
    exe = shutil.which("litert-benchmark")
    if exe is None:
        return {"avg_ms": None, "note": "litert-benchmark not on PATH (it ships with ai-edge-litert)"}
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "lb.json"
        cmd = [exe, "--model", str(path), "--num_threads", str(threads), "--num_runs", str(max(repeats, 1)),
               "--warmup_runs", str(max(warmup, 1)), "--result_json", str(out_json)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"avg_ms": None, "note": f"litert-benchmark timed out after {timeout}s"}
        if out_json.is_file():
            lat = json.loads(out_json.read_text()).get("latency", {})
            return {"avg_ms": lat.get("avg_ms"), "median_ms": lat.get("median_ms"), "p95_ms": lat.get("p95_ms"),
                    "init_ms": lat.get("init_ms"), "num_runs": lat.get("num_runs"), "command": _lb_cmd(path, threads)}
        text = (proc.stdout or "") + (proc.stderr or "")
        for line in text.splitlines():
            if "Inference (avg)" in line:
                try:
                    return {"avg_ms": float(line.split(":", 1)[1].split("ms")[0]), "command": _lb_cmd(path, threads)}
                except ValueError:
                    pass
        last = text.strip().splitlines()[-1] if text.strip() else f"exit {proc.returncode}"
        return {"avg_ms": None, "note": f"litert-benchmark failed: {last[:200]}"}


# ------------------------------------------------------------------------------------ cold start
_CHILD = "from benchmarks.bench import _cold_child; _cold_child()"


def proc_status_mb(key):
    """A /proc/self/status memory field (VmRSS, VmHWM) in MB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _vmrss_mb():
    return proc_status_mb("VmRSS")


def _peak_rss_mb():
    # VmHWM belongs to this process image; ru_maxrss would also count the (large) parent we were forked from,
    # because Linux carries the pre-exec high-water mark over into ru_maxrss.
    hwm = proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cold_child():
    """Runs in a fresh interpreter: imports, then load + first inference, then peak RSS as JSON on stdout."""
    args = json.loads(sys.argv[1])
    t_imp = time.perf_counter()
    if args["kind"] == "keras":
        from benchmarks.bench import load_keras_model, split_outputs  # noqa: F401 - imports TF lazily below
        from trainer.tfutil import import_keras

        import_keras()
    else:
        from edge.runtime import EdgeModel
    from edge.imageio import load_image

    import_s = time.perf_counter() - t_imp
    rss_imported = _vmrss_mb()
    t0 = time.perf_counter()
    if args["kind"] == "keras":
        model, _ = load_keras_model(args["run_dir"])
        load_s = time.perf_counter() - t0
        img = load_image(args["image"], tuple(args["size"]))
        model.predict(img[None].astype(np.float32), verbose=0)
    else:
        model = EdgeModel(args["path"], threads=args["threads"])
        load_s = time.perf_counter() - t0
        img = load_image(args["image"], tuple(args["size"]))
        model.predict_array(img)
    first_s = time.perf_counter() - t0
    print("BENCH_CHILD " + json.dumps({
        "import_s": import_s, "load_s": load_s, "cold_start_s": first_s,
        "rss_after_import_mb": rss_imported, "peak_rss_mb": _peak_rss_mb(),
    }))


def cold_start(kind, *, path=None, run_dir=None, image=None, size=(224, 224), threads=None, timeout=300):
    """Load + first inference in a fresh process (imports timed separately), and that process's peak RSS."""
    args = {"kind": kind, "path": str(path) if path else None, "run_dir": str(run_dir) if run_dir else None,
            "image": str(image), "size": list(size), "threads": threads}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"note": f"cold-start child timed out after {timeout}s"}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_CHILD "):
            return json.loads(line[len("BENCH_CHILD "):])
    err = (proc.stderr or "").strip().splitlines()
    return {"note": f"cold-start child failed: {err[-1][:200] if err else proc.returncode}"}


# ------------------------------------------------------------------------------------ the run
def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod, name in (("tensorflow", "tensorflow"), ("keras", "keras"), ("ai_edge_litert", "ai-edge-litert"),
                      ("numpy", "numpy")):
        try:
            from importlib.metadata import version

            versions[name] = version(name if name != "tensorflow" else "tensorflow-cpu")
        except Exception:  # noqa: BLE001 - a missing package is simply not listed
            try:
                from importlib.metadata import version

                versions[name] = version(mod)
            except Exception:  # noqa: BLE001
                pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


def _export_note(run_dir, variant):
    """Why the exporter left a variant out (e.g. no edgetpu_compiler), from its export_report.json."""
    try:
        rep = json.loads((Path(run_dir) / "export" / "export_report.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for note in rep.get("notes", []):
        if note.startswith(variant + " ") or note.startswith(variant + ":"):
            return "export: " + note.split(";")[0]
    entry = rep.get("variants", {}).get(variant)
    if entry and entry.get("status") == "FAILED":
        return f"export: {variant} failed parity and was kept aside as {entry.get('file')}"
    return None


def find_variants(run_dir, variants=None):
    """[(name, path or None)] for the requested variants, plus {name: why skipped}."""
    run_dir = Path(run_dir)
    wanted = list(variants) if variants else list(VARIANTS)
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        raise BenchError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    found, skipped = [], {}
    for v in wanted:
        if v == "keras":
            found.append((v, run_dir / "model.keras"))
            continue
        p = run_dir / "export" / EXPORT_FILES[v]
        if p.is_file():
            found.append((v, p))
        else:
            skipped[v] = _export_note(run_dir, v) or f"{p.name} not exported (run 'edgeinspect export {run_dir}')"
    if not any(p for _, p in found):
        raise BenchError(f"{run_dir}: nothing to benchmark; export the run first: edgeinspect export {run_dir}")
    return found, skipped


def run_bench(run_dir, out_dir=None, variants=None, repeats=50, warmup=5, n_boot=1000, litert_benchmark=True,
              progress=True, threads=None, cold=True, keras_repeats=None, limit=None, compare_to=None,
              write=True) -> dict:
    """Benchmark every variant of ``run_dir``; writes RUN/bench/ (or out_dir) and returns the result dict."""
    from trainer.run_folder import read_run

    run_dir = Path(run_dir)
    info = read_run(run_dir) if (run_dir / "model.keras").is_file() else _read_run_json(run_dir)
    task = info.get("task", "classifier")
    threshold = float(info.get("threshold", 0.5))
    threads = int(threads or os.cpu_count() or 1)
    found, skipped = find_variants(run_dir, variants)
    if ("keras" in [v for v, _ in found]) and not (run_dir / "model.keras").is_file():
        found = [(v, p) for v, p in found if v != "keras"]
        skipped["keras"] = "run folder has no model.keras"
    t_start = time.perf_counter()
    ts = load_test_set(run_dir, info.get("input_size", [224, 224]), limit=limit)
    n_def = int(ts.labels.sum())
    _echo(progress, f"bench {run_dir}: {task}, {len(ts.paths)} test images ({n_def} defective), threshold "
                    f"{threshold:.4g}, {threads} threads, warm-up {warmup}, repeats {repeats}")
    raw = {}
    rows = {}
    for i, (v, path) in enumerate(found, 1):
        t0 = time.perf_counter()
        _echo(progress, f"[{i}/{len(found)}] {TITLES[v]} ({Path(path).name})")
        if v == "keras":
            r = bench_keras(run_dir, info, ts, warmup, keras_repeats or max(10, repeats // 3), progress)
            thr = threshold
        else:
            model = _edge_model(path, threads)
            if v == "edgetpu" and not model.on_edgetpu:
                skipped[v] = "no Edge TPU on this machine (libedgetpu delegate or device missing); " + \
                    "; ".join(model.notes)[:200]
                _echo(progress, f"    skipped: {skipped[v]}")
                continue
            r = bench_tflite(path, ts, threads, warmup, repeats, progress, model=model)
            thr = r["threshold"]
        raw[v] = r
        row = {"variant": v, "title": TITLES[v], "file": str(path), "size_mb": Path(path).stat().st_size / 1e6,
               "threshold": thr, "latency": r["latency"], "load_s": r["load_s"]}
        if v == "keras":
            row["batch_predict"] = r["batch"]
            row["loader"] = r["loader"]
        else:
            row.update(invoke=r["invoke"], backend=r["backend"], variant_in_metadata=r["meta"].get("variant"))
            if abs(thr - threshold) > 1e-6:
                row["threshold_note"] = f"model metadata threshold {thr:.4g} differs from run.json {threshold:.4g}"
            if litert_benchmark and v != "edgetpu":
                _echo(progress, f"    litert-benchmark --num_threads {threads}")
                row["litert_benchmark"] = litert_benchmark_ms(path, threads, warmup, repeats)
        if cold:
            _echo(progress, "    cold start (load + first result) in a fresh process")
            if v == "keras":
                row["cold"] = cold_start("keras", run_dir=run_dir, image=ts.paths[0], size=ts.size)
            else:
                row["cold"] = cold_start("tflite", path=path, image=ts.paths[0], size=ts.size, threads=threads)
        rows[v] = row
        lat = row["latency"]
        _echo(progress, f"    p50 {lat.get('p50', float('nan')):.2f} ms, p95 {lat.get('p95', float('nan')):.2f} ms "
                        f"({time.perf_counter() - t0:.1f}s)")
    if not rows:
        raise BenchError(f"{run_dir}: no variant could be benchmarked ({'; '.join(skipped.values())})")
    # Accuracy last, so agreement can refer to the float model whatever order variants ran in.
    ref = next((v for v in ("keras", "fp32") if v in raw), None)
    ref_pred = raw[ref]["scores"] >= rows[ref]["threshold"] if ref else None
    for v, r in raw.items():
        rows[v]["accuracy"] = accuracy_block(
            ts.labels, ts.types, r["scores"], rows[v]["threshold"], n_boot=n_boot,
            ref_pred=None if v == ref else ref_pred,
            ref_scores=None if ref is None or v == ref else raw[ref]["scores"],
            pred_types=r.get("pred_types"))
    alerts = collect_alerts(rows) + export_alerts(run_dir)
    result = {
        "schema": SCHEMA,
        "run": str(run_dir), "run_name": info.get("name", run_dir.name), "task": task,
        "labels": info.get("labels"), "input_size": list(ts.size), "threshold": threshold,
        "threshold_policy": info.get("threshold_policy"),
        "test": {"n": len(ts.paths), "n_defective": n_def, "n_good": len(ts.paths) - n_def,
                 "types": {t: ts.types.count(t) for t in sorted(set(ts.types))}, "root": str(ts.root)},
        "settings": {"repeats": repeats, "warmup": warmup, "threads": threads, "n_boot": n_boot,
                     "latency_path": "EdgeModel.predict_array on decoded RGB arrays (decode excluded); "
                                     "Keras: model.predict on one image",
                     "memory": "peak RSS of a fresh child process that loads the model and runs one image "
                               "(includes the Python/numpy/runtime baseline shown as rss_after_import_mb)"},
        "agreement_reference": ref,
        "machine": machine_info(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "variants": rows,
        "skipped": skipped,
        "warnings": [a["message"] for a in alerts],
        "alerts": alerts,
        "per_image": {
            "paths": [os.path.relpath(p, ts.root) for p in ts.paths], "labels": ts.labels.tolist(),
            "types": ts.types,
            "scores": {v: [round(float(x), 6) for x in r["scores"]] for v, r in raw.items()},
        },
    }
    result["elapsed_s"] = time.perf_counter() - t_start
    if compare_to:
        result["comparison"] = compare(result, load_reference(compare_to))
        result["comparison"]["reference_file"] = str(compare_to)
    if write:
        out = Path(out_dir) if out_dir else run_dir / "bench"
        result["outputs"] = write_outputs(result, out, ts=ts, raw=raw, progress=progress)
    return result


def collect_alerts(rows) -> list:
    """Every variant's honesty alerts (trainer.metrics.alert dicts), tagged with the variant and its title."""
    return [dict(a, variant=v, message=f"{TITLES[v]}: {a['message']}")
            for v, row in rows.items() for a in row["accuracy"].get("alerts", [])]


def export_alerts(run_dir) -> list:
    """A variant that failed the exporter's parity check is red in the report, not only a skipped row."""
    from trainer.metrics import alert

    try:
        rep = json.loads((Path(run_dir) / "export" / "export_report.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    out = []
    for v, entry in (rep.get("variants") or {}).items():
        if not isinstance(entry, dict) or entry.get("status") != "FAILED":
            continue
        reasons = (entry.get("parity") or {}).get("reasons") or []
        kind, what = (("parity_failed", "failed the export parity check") if reasons
                      else ("export_failed", "failed to export"))
        why = "; ".join(reasons) or entry.get("error") or "see export/export_report.json"
        f = entry.get("file") or ""
        fate = f"kept aside as {f}, not benchmarked" if f.endswith(".failed.tflite") or not f else \
            "exported anyway (--no-fail), so its row below is a failed model"
        out.append(dict(alert(kind, f"{TITLES.get(v, v)}: {what} ({why}); {fate}"), variant=v))
    return out


def _read_run_json(run_dir):
    p = Path(run_dir) / "run.json"
    if not p.is_file():
        raise BenchError(f"{run_dir}: not an edgeinspect run folder (no run.json); train one with 'edgeinspect train'")
    return json.loads(p.read_text())


# ------------------------------------------------------------------------------------ comparison
def load_reference(path) -> dict:
    from edge.atomic import read_json

    p = Path(path)
    ref = read_json(p, BenchError, missing="reference results not found; pass a bench.json or a file under benchmarks/results/")
    if "variants" not in ref:
        raise BenchError(f"{p}: not a bench result (no 'variants'); pass a bench.json written by 'edgeinspect bench'")
    return ref


# What must be equal before absolute milliseconds of two runs are put side by side.
_MACHINE_KEYS = ("cpu", "cores")
_RUNTIME_VERSIONS = ("ai-edge-litert", "tensorflow")


def machine_mismatch(result, reference) -> list:
    """Why two runs' absolute timings are not comparable ([] when they look like the same machine)."""
    m, r = result.get("machine") or {}, reference.get("machine") or {}
    out = [f"{k} {r.get(k)!r} vs {m.get(k)!r}" for k in _MACHINE_KEYS if m.get(k) != r.get(k)]
    t, rt = (result.get("settings") or {}).get("threads"), (reference.get("settings") or {}).get("threads")
    if t != rt:
        out.append(f"threads {rt} vs {t}")
    mv, rv = m.get("versions") or {}, r.get("versions") or {}
    out += [f"{k} {rv.get(k)} vs {mv.get(k)}" for k in _RUNTIME_VERSIONS if mv.get(k) != rv.get(k)]
    return out


def latency_ratios(result) -> dict:
    """Machine-independent latency figures of one run, each a ratio of two timings taken in that run:
    ``overhead`` = a TFLite variant's latency / the bare ``invoke()`` of the same interpreter (what
    edgeinspect's pre- and post-processing cost), ``int8_vs_fp32`` = int8 latency / float32 latency (what
    quantisation buys). A faster or slower CPU moves both timings of a ratio together.

    Each timing is the fastest of the run's timed calls, not the p50: on a 2-core machine shared with
    other jobs, p50-based int8/float32 ratios of one model ranged 0.13-0.41 over eight back-to-back
    measurements, fastest-call ratios 0.37-0.48 (and overhead 0.97-1.25 instead of 0.76-1.85), because
    other processes stretch the longer, multi-threaded float32 calls more than the short int8 ones."""
    out = {}
    variants = result.get("variants", {})
    for v, row in variants.items():
        best, inv = row.get("latency", {}).get("min"), (row.get("invoke") or {}).get("min")
        if best and inv:
            out.setdefault(v, {})["overhead"] = best / inv
    i8, f32 = (variants.get(k, {}).get("latency", {}).get("min") for k in ("int8", "fp32"))
    if i8 and f32:
        out.setdefault("int8", {})["int8_vs_fp32"] = i8 / f32
    return out


_RATIO_TEXT = {"overhead": "its bare invoke()", "int8_vs_fp32": "float32's"}


def compare(result, reference, auroc_drop=AUROC_DROP, latency_ratio=LATENCY_RATIO) -> dict:
    """Per variant present in both: AUROC drop and latency, with regressions listed plainly.

    Latency is judged from ratios measured within each run (``latency_ratios``), so a reference
    taken on another CPU, or on this one while it was busy, cannot raise a false alarm. Absolute p50
    milliseconds are compared only when the machines match (``machine_mismatch``), and then as an
    amber warning: a whole-runtime slowdown on the same box is as likely a busy machine as a regression.
    ``alerts`` carries every finding with its severity (trainer.metrics.alert); ``regressions`` is the
    text of the severe ones (what ``--fail-on-regression`` fails on).
    """
    from trainer.metrics import NOTE, SEVERE, WARNING, alert

    mismatch = machine_mismatch(result, reference)
    ratios, ref_ratios = latency_ratios(result), latency_ratios(reference)
    rows, alerts = {}, []
    for v, row in result["variants"].items():
        ref = reference.get("variants", {}).get(v)
        if not ref:
            continue
        a, ra = row["accuracy"]["auroc"], ref["accuracy"]["auroc"]
        p, rp = row["latency"].get("p50"), ref["latency"].get("p50")
        c = {"auroc": a, "auroc_ref": ra, "auroc_delta": a - ra if not (math.isnan(a) or math.isnan(ra)) else None,
             "p50": p, "p50_ref": rp, "p50_ratio": (p / rp) if p and rp else None,
             "ratios": ratios.get(v, {}), "ratios_ref": ref_ratios.get(v, {})}
        found = []
        if c["auroc_delta"] is not None and c["auroc_delta"] < -auroc_drop:
            found.append(alert("auroc_drop", f"{TITLES[v]}: AUROC {a:.3f} dropped {-c['auroc_delta']:.3f} from "
                                             f"reference {ra:.3f} (limit {auroc_drop})", SEVERE))
        for k, x in c["ratios"].items():
            rx = c["ratios_ref"].get(k)
            if rx and x / rx > latency_ratio:
                found.append(alert("latency_ratio", f"{TITLES[v]}: latency is {x:.2f}x {_RATIO_TEXT[k]} in this run, "
                                                    f"{rx:.2f}x in the reference ({x / rx:.2f}x worse, limit "
                                                    f"{latency_ratio}x; fastest call of each)", SEVERE))
        if not mismatch and c["p50_ratio"] is not None and c["p50_ratio"] > latency_ratio:
            found.append(alert("latency_absolute", f"{TITLES[v]}: p50 {p:.2f} ms is {c['p50_ratio']:.2f}x the "
                                                   f"reference {rp:.2f} ms on a matching machine (limit "
                                                   f"{latency_ratio}x); a busy machine does this too", WARNING))
        for x in found:
            x["variant"] = v
        c["alerts"] = found
        c["regressions"] = [x["message"] for x in found if x["severity"] == SEVERE]
        alerts += found
        rows[v] = c
    note = None
    if mismatch:
        note = (f"reference measured on another machine ({', '.join(mismatch)}): absolute milliseconds are not "
                f"compared; latency is checked with ratios measured within each run (predict / bare invoke(), "
                f"int8 / float32)")
        alerts.append(alert("other_machine", note, NOTE))
    regressions = [x["message"] for x in alerts if x["severity"] == SEVERE]
    return {"variants": rows, "regressions": regressions, "alerts": alerts, "ok": not regressions, "note": note,
            "same_machine": not mismatch,
            "rules": {"auroc_drop": auroc_drop, "latency_ratio": latency_ratio,
                      "latency": "same-run ratios always; absolute p50 only on a matching machine (amber)"}}


def slim(result) -> dict:
    """Numbers only (no per-image scores, no paths to this machine): what benchmarks/results/ commits."""
    keep = {k: v for k, v in result.items() if k not in ("per_image", "outputs", "comparison")}
    keep = json.loads(json.dumps(keep, default=float))
    keep["run"] = Path(result["run"]).name
    keep["test"].pop("root", None)
    for row in keep["variants"].values():
        row["file"] = Path(row["file"]).name
    return keep


# ------------------------------------------------------------------------------------ outputs
COLUMNS = ["Format", "Size MB", "AUROC [CI]", "Bal.acc [CI]", "Recall", "Acc (baseline)", "ms p50", "ms p95",
           "invoke ms", "litert-benchmark ms", "agree"]


def _f(x, fmt="{:.3f}"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def table_rows(result) -> list:
    out = []
    for v, row in result["variants"].items():
        a = row["accuracy"]
        ci, bci = a.get("auroc_ci95", [None, None]), a.get("balanced_accuracy_ci95", [None, None])
        lat = row["latency"]
        lb = (row.get("litert_benchmark") or {}).get("avg_ms")
        out.append([
            row["title"], _f(row["size_mb"], "{:.2f}"),
            f"{_f(a['auroc'])} [{_f(ci[0])}-{_f(ci[1])}]",
            f"{_f(a['balanced_accuracy'])} [{_f(bci[0])}-{_f(bci[1])}]",
            _f(a["recall"]["defective"]),
            f"{_f(a['accuracy'])} ({_f(a['majority_baseline'])})",
            _f(lat.get("p50"), "{:.2f}"), _f(lat.get("p95"), "{:.2f}"),
            _f((row.get("invoke") or {}).get("p50"), "{:.2f}"), _f(lb, "{:.2f}"),
            "ref" if v == result.get("agreement_reference") else _f(a.get("agreement"), "{:.3f}"),
        ])
    return out


def format_table(result) -> str:
    rows = table_rows(result)
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    line = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    text = [f"{result['run_name']} ({result['task']}): {result['test']['n']} test images, "
            f"{result['test']['n_defective']} defective, threshold {result['threshold']:.4g}",
            line(COLUMNS), "-+-".join("-" * w for w in widths)]
    text += [line(r) for r in rows]
    k = result["variants"].get("keras")
    if k and k.get("batch_predict"):
        b = k["batch_predict"]
        text.append(f"Keras model.predict on the whole test set: {b['ms_per_image']:.2f} ms/image "
                    f"({b['throughput_ips']:.1f} images/s, batch {b['batch_size']}); 'ms p50' above is one image per call")
    for v, why in result.get("skipped", {}).items():
        text.append(f"skipped {TITLES[v]}: {why}")
    for w in result.get("warnings", []):
        text.append(f"WARNING: {w}")
    comp = result.get("comparison")
    if comp:
        from trainer.metrics import NOTE, SEVERE, WARNING

        prefix = {SEVERE: "REGRESSION", WARNING: "warning", NOTE: "note"}
        found = comp.get("alerts")
        if found is None:  # a comparison written before alerts existed
            found = [{"severity": SEVERE, "message": r} for r in comp["regressions"]]
            found += [{"severity": NOTE, "message": comp["note"]}] if comp.get("note") else []
        if not comp["regressions"]:
            text.append(f"no regression against {comp.get('reference_file')}")
        text += [f"{prefix[a['severity']]}: {a['message']}" for a in found]
    return "\n".join(text)


def write_csv(result, path):
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "title", "size_mb", "threshold", "auroc", "auroc_ci_lo", "auroc_ci_hi",
                "balanced_accuracy", "bal_acc_ci_lo", "bal_acc_ci_hi", "precision", "recall", "f1", "accuracy",
                "majority_baseline", "tn", "fp", "fn", "tp", "agreement", "p50_ms", "p95_ms", "p99_ms",
                "throughput_ips", "invoke_p50_ms", "litert_benchmark_avg_ms", "cold_start_s", "peak_rss_mb",
                "warnings"])
    for v, row in result["variants"].items():
        a = row["accuracy"]
        cm = a["confusion_matrix"]["rows_true_cols_pred"]
        lat = row["latency"]
        cold = row.get("cold") or {}
        w.writerow([v, row["title"], f"{row['size_mb']:.4f}", row["threshold"], a["auroc"], *a["auroc_ci95"],
                    a["balanced_accuracy"], *a["balanced_accuracy_ci95"], a["precision"]["defective"],
                    a["recall"]["defective"], a["f1"]["defective"], a["accuracy"], a["majority_baseline"],
                    cm[0][0], cm[0][1], cm[1][0], cm[1][1], a.get("agreement", ""), lat.get("p50"), lat.get("p95"),
                    lat.get("p99"), lat.get("throughput_ips"), (row.get("invoke") or {}).get("p50", ""),
                    (row.get("litert_benchmark") or {}).get("avg_ms", ""), cold.get("cold_start_s", ""),
                    cold.get("peak_rss_mb", ""), " | ".join(a["warnings"])])
    from edge.atomic import atomic_write_text

    atomic_write_text(path, buf.getvalue())


def write_outputs(result, out_dir, ts=None, raw=None, progress=True) -> dict:
    """bench.json, bench.csv, table.txt, the PNGs and report.html into out_dir."""
    from edge.atomic import atomic_write_json, atomic_write_text

    from benchmarks import report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "bench.json"), "csv": str(out / "bench.csv"), "table": str(out / "table.txt")}
    pngs = report.write_plots(result, out, ts=ts, raw=raw)
    files["png"] = {k: str(p) for k, p in pngs.items()}
    files["html"] = str(report.write_html(result, out, pngs))
    result["outputs"] = files
    atomic_write_json(out / "bench.json", result)
    write_csv(result, out / "bench.csv")
    atomic_write_text(out / "table.txt", format_table(result) + "\n")
    _echo(progress, f"wrote {out}/: bench.json, bench.csv, {len(pngs)} PNGs, report.html")
    return files
