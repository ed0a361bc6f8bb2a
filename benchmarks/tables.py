"""The bench table: its columns, text form (table.txt, the console) and CSV (bench.csv).

report.py draws the HTML table from the same rows, so the two never disagree.
"""
from __future__ import annotations

import math

from export.variants import title


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
    for v, row in result["variants"].items():
        a = row["accuracy"]
        if a.get("type_accuracy") is not None:  # a model with a type head (classifier, anomaly with types)
            per = ", ".join(f"{t} {p['accuracy']:.3f} (n={p['n']})"
                            for t, p in a.get("type_accuracy_per_type", {}).items())
            text.append(f"{row['title']}: type accuracy on caught defects {a['type_accuracy']:.3f} "
                        f"(n={a['type_accuracy_n']})" + (f": {per}" if per else ""))
    if result.get("backends"):
        from benchmarks.backends import format_backends

        text += format_backends(result["backends"])
    for v, why in result.get("skipped", {}).items():
        text.append(f"skipped {title(v)}: {why}")
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
