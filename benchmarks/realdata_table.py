"""benchmarks/realdata.py's numbers: one repeat's summary, mean ± sd over repeats, and the printed table.

A repeat is one split (a seed, or a fold); rows of the same (set, mode, evidence) are aggregated so a
reader sees the spread over splits next to the mean, never one lucky split alone.
"""
from __future__ import annotations

import math


DASH = "—"
# int8 numbers aggregated per (set, mode, evidence): key in the row's "int8" summary
INT8_KEYS = ("auroc", "balanced_accuracy", "majority_baseline", "recall", "specificity", "false_reject")
PIXEL_KEYS = ("pixel_auroc_float", "pixel_auroc_int8", "aupro_float", "aupro_int8")  # <metric>_<variant>


def from_report(rep):
    """The table's quantities from a ``trainer.metrics.binary_report`` (metrics.json's ``test``)."""
    return {"auroc": rep["auroc"], "balanced_accuracy": rep["balanced_accuracy"], "accuracy": rep["accuracy"],
            "majority_baseline": rep["majority_baseline"], "recall": rep["recall"]["defective"],
            "specificity": rep["recall"]["good"], "false_reject": 1.0 - rep["recall"]["good"]}


def summary(y, scores, threshold):
    from trainer.metrics import binary_report

    return from_report(binary_report(y, scores, threshold))


def type_accuracy(test, records, n_types):
    """Type accuracy on caught defects from ``predict --json`` records (matched to ``test`` in order), or
    ``(None, why)`` when it says nothing: the set has one defect type, or the model names none."""
    if n_types < 2:
        return None, "one defect type"
    if all(r.get("defect_type") is None for r in records):
        return None, "the model names no types"
    from trainer.metrics import type_accuracy_on_caught

    typed = type_accuracy_on_caught([f["type"] for f in test], [r.get("defect_type") for r in records],
                                    [r.get("verdict") == "defective" for r in records])
    return (typed, None) if typed["n"] else (None, "no defect caught")


def mean_sd(values):
    """``{"mean", "sd", "n"}`` of the defined values (None and NaN left out; sd over >= 2, else None)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return {"mean": mean, "sd": sd, "n": len(vals)}


def fmt(agg, nd=3):
    """``0.981 ± 0.004``; one value alone as ``0.981``; nothing as ``—``."""
    if agg is None:
        return DASH
    text = f"{agg['mean']:.{nd}f}"
    return text if agg["sd"] is None else f"{text} ± {agg['sd']:.{nd}f}"


def fmt_of(agg, repeats):
    """``fmt``, saying on how many of the ``repeats`` splits the value exists when not all (e.g. a split
    whose model caught no defect has no type accuracy): ``0.500 (1/2 splits)``."""
    text = fmt(agg)
    return text + f" ({agg['n']}/{repeats} splits)" if agg and agg["n"] < repeats else text


def _key(row):
    return row["set"], row.get("mode", "anomaly"), row.get("evidence", DASH)


def aggregate(rows):
    """One entry per (set, mode, evidence), in first-seen order, with mean ± sd over its repeats."""
    groups = {}
    for r in rows:
        groups.setdefault(_key(r), []).append(r)
    out = []
    for (name, mode, evidence), rs in groups.items():
        typed = [r.get("type_accuracy") for r in rs]
        per_type = sorted({t for ta in typed if ta for t in ta["per_type"]})
        choices = sorted({r["mode_choice"]["mode"] for r in rs if r.get("mode_choice")})
        out.append({
            "set": name, "mode": mode, "evidence": evidence, "repeats": len(rs),
            **({"mode_chosen": choices} if choices else {}),
            "float": {k: mean_sd(r["float"][k] if r.get("float") else None for r in rs)
                      for k in ("auroc", "balanced_accuracy")},
            "int8": {k: mean_sd(r["int8"][k] for r in rs) for k in INT8_KEYS},
            "type_accuracy": mean_sd(ta["accuracy"] if ta else None for ta in typed),
            "type_accuracy_caught": sum(ta["n"] for ta in typed if ta),  # defects it was measured on, all splits
            "type_accuracy_per_type": {t: mean_sd(ta["per_type"][t]["accuracy"] if ta and t in ta["per_type"]
                                                  else None for ta in typed) for t in per_type},
            "type_accuracy_note": None if any(typed) else rs[0].get("type_accuracy_note"),
            "target_false_reject": rs[0].get("target_false_reject"),
            "parity_ok": sum(r["parity"] == "OK" for r in rs), "agreement": mean_sd(r["agreement"] for r in rs),
            "train_s": mean_sd(r["train_s"] for r in rs), "export_s": mean_sd(r["export_s"] for r in rs),
            "pixel": _pixel(rs),
        })
    return out


def _pixel(rs):
    """Pixel AUROC / AUPRO mean ± sd (fp32, int8) over the repeats that have masks, or None."""
    have = [r["pixel"] for r in rs if r.get("pixel")]
    if not have:
        return None
    return {f"{m}_{v}": mean_sd(p[v][m] for p in have) for m, v in
            (k.rsplit("_", 1) for k in PIXEL_KEYS)}


def _mode(a):
    chosen = a.get("mode_chosen")
    return f"{a['mode']} -> {'/'.join(chosen)}" if chosen else a["mode"]


def _parity(a):
    status = "OK" if a["parity_ok"] == a["repeats"] else "FAILED"
    if a["repeats"] > 1:
        status += f" {a['parity_ok']}/{a['repeats']}"
    return f"{status} ({fmt(a['agreement'])})"


def _seconds(agg):
    return DASH if agg is None else f"{agg['mean']:.0f}"


def _render(table):
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(rows):
    """The repeats of ``rows`` aggregated, one line per (set, mode, evidence); then, when any line has
    them, a table of type accuracy per type and one of the pixel metrics."""
    aggs = aggregate(rows)
    main = [("set", "mode", "evidence", "splits", "AUROC fp32", "AUROC int8", "bal.acc fp32", "bal.acc int8 (baseline)",
             "recall", "specificity", "false-reject (target)", "type acc (caught)", "parity (agree)", "train s",
             "export s")]
    for a in aggs:
        f, q, target = a["float"], a["int8"], a["target_false_reject"]
        main.append((a["set"], _mode(a), a["evidence"], a["repeats"], fmt(f["auroc"]), fmt(q["auroc"]),
                     fmt(f["balanced_accuracy"]),
                     f"{fmt(q['balanced_accuracy'])} ({q['majority_baseline']['mean']:.3f})",
                     fmt(q["recall"]), fmt(q["specificity"]),
                     fmt(q["false_reject"]) + (f" ({target:.3f})" if target is not None else ""),
                     fmt_of(a["type_accuracy"], a["repeats"]), _parity(a), _seconds(a["train_s"]),
                     _seconds(a["export_s"])))
    tables = [main]
    typed = [a for a in aggs if a["type_accuracy_per_type"]]
    if typed:
        tables.append([("set", "mode", "evidence", "type accuracy on caught defects, per type")]
                      + [(a["set"], _mode(a), a["evidence"],
                          ", ".join(f"{t} {fmt_of(v, a['repeats'])}" for t, v in a["type_accuracy_per_type"].items()))
                         for a in typed])
    pix = [a for a in aggs if a["pixel"]]
    if pix:  # only sets with ground_truth masks have them
        tables.append([("set", "mode", "evidence", "pixel AUROC fp32", "pixel AUROC int8", "AUPRO fp32", "AUPRO int8")]
                      + [(a["set"], _mode(a), a["evidence"], *(fmt(a["pixel"][k]) for k in PIXEL_KEYS))
                         for a in pix])
    return "\n\n".join(_render(t) for t in tables)
