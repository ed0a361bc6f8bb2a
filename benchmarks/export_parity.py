"""Export a run to every TFLite variant and record sizes, agreement with Keras and AUROC drop.

    python benchmarks/export_parity.py --run runs/train/exp [--calib-size 300] [--out benchmarks/results/export_parity.json]

Works on a copy of the run folder (``--in-place`` to export into the run itself), so a
reference run is never modified. Prints the parity table and a bar check:
int8 agreement >= 0.99 and AUROC drop <= 0.005; fp16 agreement 1.00; int8 <= 30% of float32.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BAR = {"int8_agreement": 0.99, "int8_type_agreement": 0.95, "int8_auroc_drop": 0.005, "fp16_agreement": 1.0,
       "int8_size_ratio": 0.30}


def summarize(report: dict) -> dict:
    v = report["variants"]
    fp32 = v.get("fp32", {}).get("size_bytes")
    rows = {}
    for name, e in v.items():
        p = e.get("parity") or {}
        rows[name] = {
            "size_bytes": e.get("size_bytes"), "size_vs_fp32": (e["size_bytes"] / fp32) if fp32 and e.get("size_bytes") else None,
            "agreement": p.get("agreement"), "type_agreement": p.get("type_agreement"),
            "auroc": p.get("auroc"), "auroc_float": p.get("auroc_float"), "auroc_drop": p.get("auroc_drop"),
            "balanced_accuracy": p.get("balanced_accuracy"), "balanced_accuracy_float": p.get("balanced_accuracy_float"),
            "majority_baseline": p.get("majority_baseline"),
            "max_abs_score_diff": p.get("max_abs_score_diff"), "mean_abs_score_diff": p.get("mean_abs_score_diff"),
            "spearman": p.get("spearman"), "status": e.get("status"),
        }
    i8, f16 = rows.get("int8", {}), rows.get("fp16", {})
    agree8, type8 = i8.get("agreement"), i8.get("type_agreement")
    checks = {
        # The bar's agreement is the defective/good verdict; the defect type has export's own bar.
        "int8_agreement": (agree8, agree8 is not None and agree8 >= BAR["int8_agreement"]),
        "int8_type_agreement": (type8, type8 is None or type8 >= BAR["int8_type_agreement"]),
        "int8_auroc_drop": (i8.get("auroc_drop"), i8.get("auroc_drop") is not None and i8["auroc_drop"] <= BAR["int8_auroc_drop"]),
        "fp16_agreement": (f16.get("agreement"), f16.get("agreement") == 1.0),
        "int8_size_ratio": (i8.get("size_vs_fp32"), i8.get("size_vs_fp32") is not None and i8["size_vs_fp32"] <= BAR["int8_size_ratio"]),
    }
    return {"variants": rows, "bar": BAR, "checks": {k: {"value": a, "pass": b} for k, (a, b) in checks.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="run folder (model.keras, run.json, manifest.json)")
    ap.add_argument("--calib-size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "export_parity.json"))
    ap.add_argument("--in-place", action="store_true", help="export into RUN/export instead of a temporary copy")
    args = ap.parse_args(argv)

    from edge.atomic import atomic_write_json
    from export.convert import export_run
    from export.variants import CONVERTED

    src = Path(args.run)
    tmp = None
    run = src
    if not args.in_place:
        tmp = tempfile.mkdtemp(prefix="export_parity_")
        run = Path(shutil.copytree(src, Path(tmp) / src.name, ignore=shutil.ignore_patterns("export")))
    t0 = time.time()
    try:
        report = export_run(run, variants=CONVERTED, calib_size=args.calib_size, seed=args.seed, progress=True, no_fail=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(report)
    result = {
        "run": str(src.resolve()), "task": report["task"], "input_size": report["input_size"],
        "keras_params": report["keras_params"], "parity_split": report["parity_split"],
        "parity_images": report["parity_images"], "calibration": report.get("calibration"),
        "float_reference": report["float_reference"], **summary,
        "seconds": round(time.time() - t0, 1), "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }
    out = Path(args.out)
    existing = {}
    if out.is_file():
        try:
            existing = json.loads(out.read_text())
        except json.JSONDecodeError:
            existing = {}
    existing = existing if isinstance(existing, dict) and "runs" in existing else {"runs": {}}
    existing["runs"][f"{report['task']}:{src.name}"] = result
    atomic_write_json(out, existing)
    print("\nbar check:")
    for k, c in summary["checks"].items():
        v = c["value"]
        print(f"  {k:19s} {('n/a' if v is None else f'{v:.4f}'):>8}  (bar {BAR[k]})  {'PASS' if c['pass'] else 'FAIL'}")
    print(f"written: {out}")
    return 0 if all(c["pass"] for c in summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
