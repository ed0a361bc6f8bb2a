"""``--compare``: this run against a reference bench.json; what counts as a regression.

Latency is judged from ratios measured within each run, so a reference taken on another CPU (or on
this one while it was busy) cannot raise a false alarm; absolute milliseconds are put side by side
only when the machines match, and then only as an amber warning.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.common import BenchError
from export.variants import title

# Regression rules for --compare (see compare()): an AUROC drop, or a same-run latency ratio this much worse.
AUROC_DROP = 0.02
LATENCY_RATIO = 1.5


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
            found.append(alert("auroc_drop", f"{title(v)}: AUROC {a:.3f} dropped {-c['auroc_delta']:.3f} from "
                                             f"reference {ra:.3f} (limit {auroc_drop})", SEVERE))
        for k, x in c["ratios"].items():
            rx = c["ratios_ref"].get(k)
            if rx and x / rx > latency_ratio:
                found.append(alert("latency_ratio", f"{title(v)}: latency is {x:.2f}x {_RATIO_TEXT[k]} in this run, "
                                                    f"{rx:.2f}x in the reference ({x / rx:.2f}x worse, limit "
                                                    f"{latency_ratio}x; fastest call of each)", SEVERE))
        if not mismatch and c["p50_ratio"] is not None and c["p50_ratio"] > latency_ratio:
            found.append(alert("latency_absolute", f"{title(v)}: p50 {p:.2f} ms is {c['p50_ratio']:.2f}x the "
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
