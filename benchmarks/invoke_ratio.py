"""Bare ``invoke()`` of several .tflite files, interleaved in one run, as ratios to a reference file.

    python benchmarks/invoke_ratio.py classifier=RUN_A/export/model_int8.tflite \\
        anomaly=RUN_B/export/model_int8.tflite [--ref classifier] [--rounds 300] [--threads 2]

Each round invokes every model once (rotating which goes first), so a noisy machine slows all of
them alike and the ratio of medians holds where the milliseconds do not (issue 18's bar: the int8
anomaly model at most 1.3x the int8 classifier). The models run through ``edge.runtime.EdgeModel``,
the device's own loader, on one image prepared as the device prepares it. Prints a table and
writes ``benchmarks/results/invoke_ratio.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAT = ROOT.parent / "shared" / "coral_test_data" / "cat.bmp"


def parse_models(items):
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"invoke_ratio: {item!r} is not NAME=PATH (e.g. classifier=run/export/model_int8.tflite)")
        if not Path(path).is_file():
            raise SystemExit(f"invoke_ratio: {path}: no such file (give a .tflite from a run's export/ folder)")
        out[name] = path
    return out


def interleaved(models, rounds, warmup):
    """{name: [ms per invoke]}: each round times every model once, the order rotating per round."""
    from edge.imageio import load_image

    names = list(models)
    image = load_image(CAT)
    inputs = {}
    for n, m in models.items():
        inputs[n] = m.prepare(m.pixels(image))
        for _ in range(warmup):
            m.invoke_raw(inputs[n])
    ms = {n: [] for n in names}
    pc = time.perf_counter
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            m = models[n]
            m.invoke_raw(inputs[n])  # sets the input; only invoke() is timed below
            t = pc()
            m._it.invoke()
            ms[n].append((pc() - t) * 1e3)
    return ms


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="NAME=PATH of a .tflite")
    ap.add_argument("--ref", default=None, help="NAME the ratios are to (default: the first)")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "invoke_ratio.json"))
    a = ap.parse_args(argv)

    from edge.atomic import atomic_write_json
    from edge.runtime import EdgeModel

    paths = parse_models(a.models)
    ref = a.ref or next(iter(paths))
    if ref not in paths:
        raise SystemExit(f"invoke_ratio: --ref {ref!r} is none of {', '.join(paths)}")
    models = {n: EdgeModel(p, threads=a.threads) for n, p in paths.items()}
    ms = interleaved(models, a.rounds, a.warmup)
    med = {n: float(np.median(v)) for n, v in ms.items()}
    rows = [{"name": n, "path": paths[n], "bytes": Path(paths[n]).stat().st_size, "median_ms": round(med[n], 3),
             "p95_ms": round(float(np.percentile(ms[n], 95)), 3), "ratio_to_ref": round(med[n] / med[ref], 3)}
            for n in paths]
    print(f"bare invoke(), {a.rounds} interleaved rounds, {a.threads} threads (ratios to {ref})")
    print("| model | median ms | p95 ms | x " + ref + " | MB |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['name']} | {r['median_ms']:.3f} | {r['p95_ms']:.3f} | {r['ratio_to_ref']:.3f} | {r['bytes'] / 1e6:.2f} |")
    atomic_write_json(Path(a.out), {"ref": ref, "rounds": a.rounds, "threads": a.threads, "cpu_count": os.cpu_count(),
                                    "rows": rows})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
