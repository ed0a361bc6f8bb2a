"""Runtime overhead on top of the bare interpreter, in one run.

    python benchmarks/edge_latency.py [--model M.tflite] [--labels L] [--threads N] [--runs 200]

Measures, interleaved round by round so that load on a shared machine hits
both alike:
  * bare ``interpreter.invoke()`` (input already set),
  * ``EdgeModel.predict_array`` on a decoded frame already at the model's size
    (preprocess + set_tensor + invoke + postprocess: the runtime's own cost),
  * ``EdgeModel.predict_array`` on a full-size decoded frame (adds the resize),
  * ``EdgeModel.predict_array`` on camera-sized frames, 640x480, 1920x1080 and
    3840x2160 (the image stretched up, so the resize is real work), and the
    1080p frame as OpenCV's BGR (``watch``'s path), each as a ratio to the bare
    invoke of the same run (``benchmarks/backends.time_e2e``: frames interleaved,
    so each big frame is read from memory, not cache),
  * the same frames with consecutive calls on one frame (``time_e2e_warm``: the
    frame in cache, as a loop that predicts the frame it has just decoded, and
    how issue 18 measured its 3.6x),
and, beside them, the ``litert-benchmark`` figure shipped with ai-edge-litert
for the same model and thread count. Medians in ms; writes
``benchmarks/results/edge_latency.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORAL = ROOT.parent / "shared" / "coral_test_data"
DEFAULT_MODEL = CORAL / "mobilenet_v2_1.0_224_quant.tflite"


def litert_benchmark(model, threads, runs, warmup):
    exe = shutil.which("litert-benchmark")
    if not exe:
        return {"available": False}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        cmd = [exe, "--model", str(model), "--num_threads", str(threads), "--num_runs", str(runs),
               "--warmup_runs", str(warmup), "--result_json", str(out)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if p.returncode != 0 or not out.exists():
            return {"available": True, "error": (p.stderr or p.stdout).strip().splitlines()[-1:]}
        lat = json.loads(out.read_text())["latency"]
    return {"available": True, "command": " ".join(cmd[:5]), "median_ms": lat["median_ms"], "avg_ms": lat["avg_ms"],
            "p5_ms": lat["p5_ms"]}


def _frame_row(key):
    if key.endswith(" jpeg"):
        return f"decode_jpeg + predict_array, {key[:-5]} JPEG"
    if key.endswith(" bgr"):
        return f"predict_array(bgr=True), {key[:-4]} frame"
    return f"predict_array, {key} frame"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--labels", default=None, help="for plain classifiers (default: Coral ImageNet labels)")
    ap.add_argument("--image", default=str(CORAL / "cat.bmp"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--backend", default=None, help="litert (default: auto), openvino, fastest, ...")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "edge_latency.json"))
    a = ap.parse_args(argv)

    from benchmarks.timing import machine_info
    from edge.atomic import atomic_write_json
    from edge.imageio import load_image
    from edge.metadata import read_metadata
    from edge.runtime import EdgeModel

    labels = a.labels
    if labels is None and read_metadata(a.model) is None:
        labels = CORAL / "imagenet_labels.txt"
    m = EdgeModel(a.model, labels=labels, threads=a.threads, backend=a.backend)
    full = load_image(a.image)
    small = m.pixels(full)
    x = m.prepare(small)
    m.invoke_raw(x)
    for _ in range(a.warmup):
        m.invoke_raw(x)
        m.predict_array(small)
        m.predict_array(full)
    bare, e2e, e2e_full, reported = [], [], [], []
    pc = time.perf_counter
    def time_bare():
        m.invoke_raw(x)  # input set; time only invoke()
        t = pc()
        m._it.invoke()
        bare.append((pc() - t) * 1e3)

    def time_e2e():
        t = pc()
        p = m.predict_array(small)
        e2e.append((pc() - t) * 1e3)
        reported.append(p.latency_ms)

    for i in range(a.runs):
        # Alternate which of the two goes first: whichever follows the resize of the full frame
        # (cold caches, idle XNNPACK workers) is slower, and a fixed order biased the ratio by ~5%.
        for step in ((time_bare, time_e2e) if i % 2 == 0 else (time_e2e, time_bare)):
            step()
        t = pc()
        m.predict_array(full)
        e2e_full.append((pc() - t) * 1e3)
    med = statistics.median
    res = {
        "model": str(a.model), "task": m.task, "input": list(m.input_size), "dtype": m.input_dtype.name,
        "backend": m.backend, "backend_version": m.loaded.backend_version, "threads": m.threads,
        "machine": machine_info(),  # the ratio depends on the host (README: Xeon vs EPYC), so say which
        "cpu_count": os.cpu_count(), "runs": a.runs, "image": str(a.image), "image_size": list(full.shape[:2]),
        "bare_invoke_ms": round(med(bare), 3),
        "predict_array_ms": round(med(e2e), 3),
        "predict_array_reported_ms": round(med(reported), 3),
        "predict_array_fullsize_ms": round(med(e2e_full), 3),
        "ratio_predict_array_vs_invoke": round(med(e2e) / med(bare), 4),
        "ratio_fullsize_vs_invoke": round(med(e2e_full) / med(bare), 4),
    }
    from benchmarks.backends import frames_for, time_e2e, time_e2e_warm

    frames = frames_for(full, m.input_size, sizes=((640, 480), (1920, 1080), (3840, 2160)),
                        jpeg_sizes=((1920, 1080), (3840, 2160)), bgr_sizes=((1920, 1080),))
    res["frames"] = time_e2e(m, frames, a.runs, a.warmup)
    warm = {k: f for k, f in frames.items() if not k.endswith(" jpeg")}
    res["frames_warm"] = time_e2e_warm(m, warm, calls=40, rounds=max(1, a.runs // 40))
    res["litert_benchmark"] = litert_benchmark(a.model, m.threads, a.runs, a.warmup)
    rows = [("bare interpreter.invoke()", res["bare_invoke_ms"], 1.0),
            (f"predict_array, {m.input_size[0]}x{m.input_size[1]} frame", res["predict_array_ms"],
             res["ratio_predict_array_vs_invoke"]),
            (f"predict_array, {full.shape[1]}x{full.shape[0]} frame (+resize)", res["predict_array_fullsize_ms"],
             res["ratio_fullsize_vs_invoke"])]
    fr = res["frames"]
    rows.append((f"bare invoke() (frames round)", fr["invoke_ms"], 1.0))
    rows += [(_frame_row(k), ms, fr["ratio"][k]) for k, ms in fr["e2e_ms"].items()]
    fw = res["frames_warm"]
    rows.append(("bare invoke() (warm-frame blocks)", fw["invoke_ms"], 1.0))
    rows += [(_frame_row(k) + ", warm", ms, fw["ratio"][k]) for k, ms in fw["e2e_ms"].items()]
    lb = res["litert_benchmark"].get("median_ms")
    if lb is not None:
        rows.append(("litert-benchmark (separate process)", lb, lb / res["bare_invoke_ms"]))
    print(f"{Path(a.model).name}: {m.task} {m.input_size[0]}x{m.input_size[1]} {m.input_dtype.name}, "
          f"{m.backend} {m.loaded.backend_version}, {m.threads} threads, {a.runs} runs (medians)")
    print(f"{'measure':<52} {'ms':>8} {'x invoke':>9}")
    for name, ms, ratio in rows:
        print(f"{name:<52} {ms:>8.3f} {ratio:>9.3f}")
    atomic_write_json(a.out, res)
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
