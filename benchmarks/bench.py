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

import os
import time
from pathlib import Path

import numpy as np

from benchmarks.alerts import collect_alerts, export_alerts, read_export_report
from benchmarks.common import BenchError
from edge.atomic import atomic_write_json, atomic_write_text, utc_stamp
from edge.progress import as_progress
from benchmarks.compare import compare, load_reference
from benchmarks.runners import bench_keras, bench_tflite, edge_model
from benchmarks.testset import load_test_set
from benchmarks.timing import cold_start, litert_benchmark_ms, machine_info
from export.variants import BENCHED, VARIANT, title
from trainer.data.run_contract import read_run

SCHEMA = "edgeinspect-bench/1"
REPEATS = 50    # timed calls per variant, after
WARMUP = 5      # untimed warm-up calls
N_BOOT = 1000   # bootstrap resamples behind every 95% interval


def accuracy_block(y, types, scores, threshold, *, n_boot=N_BOOT, seed=0, ref_pred=None, ref_scores=None,
                   pred_types=None) -> dict:
    """binary_report (with its honesty warnings) + bootstrap CIs + per-type recall + agreement, and with
    ``pred_types`` (one predicted type per image) the type accuracy on caught defects (:func:`type_accuracy`)."""
    from trainer.metrics import auroc, balanced_accuracy_at, binary_report, bootstrap_ci, per_type_recall

    y = np.asarray(y).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    rep = binary_report(y, s, threshold)
    rep["auroc_ci95"] = bootstrap_ci(y, s, auroc, n=n_boot, seed=seed)
    rep["balanced_accuracy_ci95"] = bootstrap_ci(y, s, balanced_accuracy_at(threshold), n=n_boot, seed=seed)
    pred = s >= threshold
    rep["per_type"] = per_type_recall(types, s, threshold)
    if pred_types is not None:
        rep.update(type_accuracy(types, pred, pred_types))
    if ref_pred is not None:
        rep["agreement"] = float(np.mean(np.asarray(ref_pred).astype(bool) == pred))
    if ref_scores is not None:
        d = np.abs(np.asarray(ref_scores, dtype=np.float64) - s)
        rep["score_abs_diff"] = {"mean": float(d.mean()), "max": float(d.max())}
    return rep


def type_accuracy(types, caught, pred_types) -> dict:
    """Defect-type accuracy on the caught defects (``trainer.metrics.type_accuracy_on_caught``, the one
    computation for train, bench and the realdata benchmark) under bench's keys: {"type_accuracy",
    "type_accuracy_n", "type_accuracy_per_type": {type: {"n", "accuracy"}}}, or {} when none was caught."""
    from trainer.metrics import type_accuracy_on_caught

    rep = type_accuracy_on_caught(list(types), list(pred_types), list(caught))
    if not rep["n"]:
        return {}
    return {"type_accuracy": rep["accuracy"], "type_accuracy_n": rep["n"], "type_accuracy_per_type": rep["per_type"]}


def _export_note(run_dir, variant):
    """Why the exporter left a variant out (e.g. no edgetpu_compiler), from its export_report.json."""
    rep = read_export_report(run_dir)
    if not isinstance(rep, dict):
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
    wanted = list(variants) if variants else list(BENCHED)
    unknown = [v for v in wanted if v not in BENCHED]
    if unknown:
        raise BenchError(f"unknown variant(s) {unknown}; choose from {', '.join(BENCHED)}")
    found, skipped = [], {}
    for v in wanted:
        if VARIANT[v].source == "keras":
            found.append((v, run_dir / VARIANT[v].file))
            continue
        p = run_dir / "export" / VARIANT[v].file
        if p.is_file():
            found.append((v, p))
        else:
            skipped[v] = _export_note(run_dir, v) or f"{p.name} not exported (run 'edgeinspect export {run_dir}')"
    if not any(p for _, p in found):
        raise BenchError(f"{run_dir}: nothing to benchmark; export the run first: edgeinspect export {run_dir}")
    return found, skipped


def run_bench(run_dir, out_dir=None, variants=None, repeats=REPEATS, warmup=WARMUP, n_boot=N_BOOT, litert_benchmark=True,
              progress=True, threads=None, cold=True, keras_repeats=None, limit=None, compare_to=None,
              write=True, backends=True, backend=None) -> dict:
    """Benchmark every variant of ``run_dir``; writes RUN/bench/ (or out_dir) and returns the result dict."""
    say = as_progress(progress)
    run_dir = Path(run_dir)
    info = read_run(run_dir, need_model=False)
    task = info["task"]
    threshold = float(info["threshold"])
    threads = int(threads or os.cpu_count() or 1)
    found, skipped = find_variants(run_dir, variants)
    if ("keras" in [v for v, _ in found]) and not (run_dir / "model.keras").is_file():
        found = [(v, p) for v, p in found if v != "keras"]
        skipped["keras"] = "run folder has no model.keras"
    t_start = time.perf_counter()
    ts = load_test_set(run_dir, info["input_size"], limit=limit)
    n_def = int(ts.labels.sum())
    say(f"bench {run_dir}: {task}, {len(ts.paths)} test images ({n_def} defective), threshold "
        f"{threshold:.4g}, {threads} threads, warm-up {warmup}, repeats {repeats}")
    raw = {}
    rows = {}
    for i, (v, path) in enumerate(found, 1):
        t0 = time.perf_counter()
        say(f"[{i}/{len(found)}] {title(v)} ({Path(path).name})")
        if v == "keras":
            r = bench_keras(run_dir, info, ts, warmup, keras_repeats or max(10, repeats // 3), say)
            thr = threshold
        else:
            model = edge_model(path, threads, backend)
            if VARIANT[v].source == "compile" and not model.on_edgetpu:
                skipped[v] = "no Edge TPU on this machine (libedgetpu delegate or device missing); " + \
                    "; ".join(model.notes)[:200]
                say(f"    skipped: {skipped[v]}")
                continue
            r = bench_tflite(path, ts, threads, warmup, repeats, say, model=model)
            thr = r["threshold"]
        raw[v] = r
        row = {"variant": v, "title": title(v), "file": str(path), "size_mb": Path(path).stat().st_size / 1e6,
               "threshold": thr, "latency": r["latency"], "load_s": r["load_s"]}
        if v == "keras":
            row["batch_predict"] = r["batch"]
            row["loader"] = r["loader"]
        else:
            row.update(invoke=r["invoke"], backend=r["backend"], variant_in_metadata=r["meta"].get("variant"))
            if abs(thr - threshold) > 1e-6:
                row["threshold_note"] = f"model metadata threshold {thr:.4g} differs from run.json {threshold:.4g}"
            if litert_benchmark and VARIANT[v].source != "compile":
                say(f"    litert-benchmark --num_threads {threads}")
                row["litert_benchmark"] = litert_benchmark_ms(path, threads, warmup, repeats)
        if cold:
            say("    cold start (load + first result) in a fresh process")
            if v == "keras":
                row["cold"] = cold_start("keras", run_dir=run_dir, image=ts.paths[0], size=ts.size)
            else:
                row["cold"] = cold_start("tflite", path=path, image=ts.paths[0], size=ts.size, threads=threads)
        rows[v] = row
        lat = row["latency"]
        say(f"    p50 {lat.get('p50', float('nan')):.2f} ms, p95 {lat.get('p95', float('nan')):.2f} ms "
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
        if r.get("maps") is not None and ts.files:
            from trainer.pixel_metrics import format_pixel, pixel_report

            pixel = pixel_report(r["maps"], ts.files, ts.root, ts.size)
            if pixel:
                rows[v]["accuracy"]["pixel"] = pixel
                say(f"{title(v)}: {format_pixel(pixel)}")
    alerts = collect_alerts(rows) + export_alerts(run_dir)
    backend_table = None
    if backends:  # every backend x variant, e2e on camera-sized frames (benchmarks/backends.py)
        from benchmarks.backends import backend_rows

        say("backends x variants: agreement with LiteRT, bare invoke and e2e on 640x480 / 1920x1080 frames")
        backend_table = backend_rows(found, ts, threads, progress=say)
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
        "created": utc_stamp(),
        "variants": rows,
        "backends": backend_table,
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
        result["outputs"] = write_outputs(result, out, ts=ts, raw=raw, progress=say)
    return result


def write_outputs(result, out_dir, ts=None, raw=None, progress=True) -> dict:
    """bench.json, bench.csv, table.txt, the PNGs and report.html into out_dir."""
    say = as_progress(progress)
    from benchmarks import report
    from benchmarks.tables import format_table, write_csv

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
    say(f"wrote {out}/: bench.json, bench.csv, {len(pngs)} PNGs, report.html")
    return files
