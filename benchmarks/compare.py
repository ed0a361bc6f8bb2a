"""``--compare``: this run against a reference bench.json; what counts as a regression."""
from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.common import BenchError
from export.variants import ROWS

TITLES = {v.name: v.title for v in ROWS}
# Regression rules for --compare (see compare()).
AUROC_DROP = 0.02
LATENCY_RATIO = 1.5


def load_reference(path) -> dict:
    from edge.atomic import read_json

    p = Path(path)
    ref = read_json(p, BenchError, missing="reference results not found; pass a bench.json or a file under benchmarks/results/")
    if "variants" not in ref:
        raise BenchError(f"{p}: not a bench result (no 'variants'); pass a bench.json written by 'edgeinspect bench'")
    return ref


def compare(result, reference, auroc_drop=AUROC_DROP, latency_ratio=LATENCY_RATIO) -> dict:
    """Per variant present in both: AUROC drop and p50 latency ratio; regressions listed plainly."""
    rows, regressions = {}, []
    for v, row in result["variants"].items():
        ref = reference.get("variants", {}).get(v)
        if not ref:
            continue
        a, ra = row["accuracy"]["auroc"], ref["accuracy"]["auroc"]
        p, rp = row["latency"].get("p50"), ref["latency"].get("p50")
        c = {"auroc": a, "auroc_ref": ra, "auroc_delta": a - ra if not (math.isnan(a) or math.isnan(ra)) else None,
             "p50": p, "p50_ref": rp, "p50_ratio": (p / rp) if p and rp else None}
        flags = []
        if c["auroc_delta"] is not None and c["auroc_delta"] < -auroc_drop:
            flags.append(f"{TITLES[v]}: AUROC {a:.3f} dropped {-c['auroc_delta']:.3f} from reference {ra:.3f} "
                         f"(limit {auroc_drop})")
        if c["p50_ratio"] is not None and c["p50_ratio"] > latency_ratio:
            flags.append(f"{TITLES[v]}: p50 {p:.2f} ms is {c['p50_ratio']:.2f}x the reference {rp:.2f} ms "
                         f"(limit {latency_ratio}x)")
        c["regressions"] = flags
        regressions += flags
        rows[v] = c
    if reference.get("machine", {}).get("cpu") != result.get("machine", {}).get("cpu"):
        note = (f"reference measured on '{reference.get('machine', {}).get('cpu')}', this run on "
                f"'{result.get('machine', {}).get('cpu')}': latency ratios compare different machines")
    else:
        note = None
    return {"variants": rows, "regressions": regressions, "ok": not regressions, "note": note,
            "rules": {"auroc_drop": auroc_drop, "latency_ratio": latency_ratio}}


def slim(result) -> dict:
    """Numbers only (no per-image scores, no paths to this machine): what benchmarks/results/ commits."""
    keep = {k: v for k, v in result.items() if k not in ("per_image", "outputs", "comparison")}
    keep = json.loads(json.dumps(keep, default=float))
    keep["run"] = Path(result["run"]).name
    keep["test"].pop("root", None)
    for row in keep["variants"].values():
        row["file"] = Path(row["file"]).name
    return keep
