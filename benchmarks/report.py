"""Plots and one self-contained report.html for a bench result (the page an engineer mails to a manager).

Self-contained means every image is a base64 data URI and there is no script,
stylesheet or font from elsewhere, so the file opens the same from an e-mail,
a USB stick or an air-gapped plant PC. Honesty warnings (a single-class model,
accuracy no better than the majority baseline, a parity failure, a regression) sit
in a red banner at the top, above any number that could be quoted without them.
Colour comes from each alert's ``severity`` (trainer.metrics.alert), never from
its wording: severe is red, warning amber, note grey.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np

from edge.atomic import atomic_write_bytes, atomic_write_text
from trainer.data.run_contract import GOOD
from trainer.metrics import NOTE, SEVERE, WARNING

BANNER_CLASS = {SEVERE: "red", WARNING: "amber", NOTE: "grey"}


def result_alerts(result) -> list:
    """The run's alerts plus its comparison's, oldest files included: a bench.json written before alerts
    existed has only text warnings, which were all red then and stay red."""
    alerts = result.get("alerts")
    if alerts is None:
        alerts = [{"kind": "unclassified", "severity": SEVERE, "message": w} for w in result.get("warnings", [])]
    comp = result.get("comparison") or {}
    if "alerts" in comp:
        found = comp["alerts"]
    else:
        found = [{"kind": "regression", "severity": SEVERE, "message": r} for r in comp.get("regressions", [])]
        found += [{"kind": "note", "severity": NOTE, "message": comp["note"]}] if comp.get("note") else []
    return alerts + [dict(a, message="REGRESSION: " + a["message"]) if a["severity"] == SEVERE else a for a in found]


def severe_variants(result) -> set:
    """Variants with a red alert of their own (accuracy, parity or regression): their table rows are red."""
    out = {a["variant"] for a in result_alerts(result) if a["severity"] == SEVERE and a.get("variant")}
    for v, row in result.get("variants", {}).items():
        acc = row.get("accuracy") or {}
        if "alerts" in acc and any(a["severity"] == SEVERE for a in acc["alerts"]):
            out.add(v)
        elif "alerts" not in acc and acc.get("warnings"):
            out.add(v)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi=100):
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_accuracy_latency(result, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for v, row in result["variants"].items():
        p50 = row["latency"].get("p50")
        a = row["accuracy"]
        if not p50:
            continue
        ax.scatter([p50], [a["auroc"]], marker="o", s=60, color="C0")
        ax.scatter([p50], [a["balanced_accuracy"]], marker="s", s=40, color="C1")
        ax.annotate(row["title"], (p50, a["auroc"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency p50, ms per image (log scale; lower is better)")
    ax.set_ylabel("score")
    ax.scatter([], [], marker="o", color="C0", label="AUROC")
    ax.scatter([], [], marker="s", color="C1", label="balanced accuracy")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(f"{result['run_name']}: accuracy vs latency")
    return _save(fig, path)


def plot_roc(result, path):
    from sklearn.metrics import roc_curve

    plt = _plt()
    y = np.asarray(result["per_image"]["labels"])
    fig, ax = plt.subplots(figsize=(5, 5))
    if len(np.unique(y)) == 2:
        for i, (v, scores) in enumerate(result["per_image"]["scores"].items()):
            fpr, tpr, _ = roc_curve(y, scores)
            auc = result["variants"][v]["accuracy"]["auroc"]
            ax.plot(fpr, tpr, lw=1.5, ls=("-", "--", ":", "-.")[i % 4],
                    label=f"{result['variants'][v]['title']} (AUROC {auc:.3f})")
    else:
        ax.text(0.5, 0.5, "ROC undefined: the test split has one class", ha="center", color="red")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("false alarm rate (good parts rejected)")
    ax.set_ylabel("recall (defects caught)")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("ROC, all variants on the same test split")
    return _save(fig, path)


def plot_confusions(result, path):
    plt = _plt()
    rows = list(result["variants"].values())
    n = len(rows)
    cols = min(n, 3)
    nr = math.ceil(n / cols)
    fig, axes = plt.subplots(nr, cols, figsize=(3.2 * cols, 3.0 * nr), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, row in zip(axes.ravel(), rows):
        cm = np.asarray(row["accuracy"]["confusion_matrix"]["rows_true_cols_pred"])
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(int(cm.max()), 1))
        for (i, j), val in np.ndenumerate(cm):
            ax.text(j, i, str(val), ha="center", va="center",
                    color="white" if val > cm.max() / 2 else "black", fontsize=12)
        ax.set_xticks([0, 1], ["good", "defective"])
        ax.set_yticks([0, 1], ["good", "defective"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        warn = any(a["kind"] == "single_class" for a in row["accuracy"].get("alerts", []))
        ax.set_title(f"{row['title']}\nthreshold {row['threshold']:.3g}", fontsize=9, color="red" if warn else "black")
    fig.tight_layout()
    return _save(fig, path)


def plot_per_type(result, path):
    plt = _plt()
    types = [t for t in result["test"]["types"] if t != GOOD]
    variants = list(result["variants"].items())
    if not types or not variants:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(types) * max(1, len(variants)) / 2), 3.6))
    width = 0.8 / len(variants)
    for i, (v, row) in enumerate(variants):
        pt = row["accuracy"]["per_type"]
        vals = [pt.get(t, {}).get("recall", float("nan")) for t in types]
        ax.bar(np.arange(len(types)) + i * width, vals, width, label=row["title"])
    ax.set_xticks(np.arange(len(types)) + 0.4 - width / 2, types)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.set_title("recall per defect type")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def showcase_variant(result):
    """The variant whose predictions the sample grid shows: the one a device would run."""
    from export.variants import VARIANT

    present = [v for v in result["variants"] if v in VARIANT]
    return min(present, key=lambda v: VARIANT[v].device_rank) if present else None


def plot_samples(result, path, ts, raw, n=16):
    """Image, true label, prediction and score; misclassified first; heat maps for anomaly runs."""
    from PIL import Image

    v = showcase_variant(result)
    if v is None or ts is None or raw is None or v not in raw:
        return None
    plt = _plt()
    thr = result["variants"][v]["threshold"]
    scores = np.asarray(raw[v]["scores"])
    pred = scores >= thr
    y = ts.labels.astype(bool)
    wrong = np.flatnonzero(pred != y)
    right = np.flatnonzero(pred == y)
    # Wrong ones by how confidently wrong, then a mix of right ones from both classes.
    wrong = wrong[np.argsort(-np.abs(scores[wrong] - thr))]
    right_neg = [i for i in right if not y[i]]
    # Correct defect examples round-robin over the types, so every kind of defect appears.
    by_type = {}
    for i in right:
        if y[i]:
            by_type.setdefault(ts.types[i], []).append(i)
    right_pos = [q[k] for k in range(max(map(len, by_type.values()), default=0)) for q in by_type.values() if k < len(q)]
    mixed = [x for pair in zip(right_pos, right_neg) for x in pair] + right_pos[len(right_neg):] + right_neg[len(right_pos):]
    order = list(wrong) + mixed
    order = order[:n]
    maps = raw[v].get("maps")
    cols = 4
    nr = max(1, math.ceil(len(order) / cols))
    fig, axes = plt.subplots(nr, cols, figsize=(3.0 * cols, 3.5 * nr), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order):
        img = ts.images[i]
        ax.imshow(img)
        if maps is not None:
            m = np.asarray(maps[i], dtype=np.float32)
            m_img = Image.fromarray(m).resize((img.shape[1], img.shape[0]), Image.BILINEAR)
            ax.imshow(np.asarray(m_img), cmap="jet", alpha=0.4, vmin=0.0, vmax=1.0)
        ok = pred[i] == y[i]
        verdict = "defective" if pred[i] else "good"
        extra = ""
        pt = raw[v].get("pred_types")
        if pt is not None and pred[i] and pt[i]:
            extra = f" ({pt[i]})"
        ax.set_title(f"true: {ts.types[i]}\npred: {verdict}{extra}  score {scores[i]:.3f}", fontsize=9.5,
                     color="black" if ok else "red")
        for s in ax.spines.values():
            s.set_visible(True)
            s.set_color("black" if ok else "red")
            s.set_linewidth(3 if not ok else 0.5)
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
    n_wrong = len(wrong)
    fig.suptitle(f"{result['variants'][v]['title']}: {n_wrong} of {len(y)} misclassified (shown first, red); "
                 f"threshold {thr:.3g}" + ("; heat map = anomaly map" if maps is not None else ""), fontsize=11)
    fig.tight_layout(h_pad=1.6)  # room for each two-line title above its picture
    return _save(fig, path, dpi=72)  # photos compress poorly; keeps report.html e-mailable


def write_plots(result, out, ts=None, raw=None) -> dict:
    out = Path(out)
    pngs = {
        "accuracy_latency": plot_accuracy_latency(result, out / "accuracy_latency.png"),
        "roc": plot_roc(result, out / "roc.png"),
        "confusion": plot_confusions(result, out / "confusion.png"),
        "per_type": plot_per_type(result, out / "per_type.png"),
        "samples": plot_samples(result, out / "samples.png", ts, raw),
    }
    return {k: p for k, p in pngs.items() if p is not None}


# ------------------------------------------------------------------------------------ HTML
def data_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _esc(x):
    return html.escape(str(x))


def _num(x, fmt="{:.3f}"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return fmt.format(x)


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
th,td{border:1px solid #ccc;padding:4px 7px;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
tr.bad td{background:#ffe5e5}
.banner{padding:10px 14px;margin:12px 0;border-radius:4px;font-size:14px}
.red{background:#c62828;color:#fff} .amber{background:#fff4d6;border:1px solid #e0b44c}
.green{background:#e6f4ea;border:1px solid #7cb98a} .grey{background:#f1f1f1;border:1px solid #ccc;color:#555}
img{max-width:100%;border:1px solid #eee;margin:6px 0}
.grid{display:flex;flex-wrap:wrap;gap:12px} .grid img{max-width:560px}
code{background:#f5f5f5;padding:1px 4px}
"""


def _headline_table(result):
    from benchmarks.tables import COLUMNS, table_rows

    head = "".join(f"<th>{_esc(c)}</th>" for c in COLUMNS)
    body = []
    severe = severe_variants(result)
    for (v, row), cells in zip(result["variants"].items(), table_rows(result)):
        bad = v in severe
        body.append(f"<tr class=\"{'bad' if bad else ''}\">" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _detail_table(result):
    head = ["Format", "precision", "recall", "F1", "TN / FP / FN / TP", "ms p99", "images/s", "load s",
            "cold start s", "peak RSS MB", "backend"]
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for v, row in result["variants"].items():
        a = row["accuracy"]
        cm = a["confusion_matrix"]["rows_true_cols_pred"]
        lat = row["latency"]
        cold = row.get("cold") or {}
        out.append("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in [
            row["title"], _num(a["precision"]["defective"]), _num(a["recall"]["defective"]),
            _num(a["f1"]["defective"]), f"{cm[0][0]} / {cm[0][1]} / {cm[1][0]} / {cm[1][1]}",
            _num(lat.get("p99"), "{:.2f}"), _num(lat.get("throughput_ips"), "{:.1f}"),
            _num(row.get("load_s"), "{:.2f}"), _num(cold.get("cold_start_s"), "{:.2f}"),
            _num(cold.get("peak_rss_mb"), "{:.0f}"), row.get("backend") or row.get("loader", "")]) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _per_type_table(result):
    types = list(result["test"]["types"])
    # models with a type head (classifier, anomaly with types): each defect type's type accuracy on its caught parts
    typed = any(r["accuracy"].get("type_accuracy_per_type") for r in result["variants"].values())
    what = "recall / type acc." if typed else "recall"
    out = ["<table><tr><th>Format</th>" + "".join(
        f"<th>{_esc(t)} (n={result['test']['types'][t]})<br>{'false alarms' if t == GOOD else what}</th>"
        for t in types) + "<th>type accuracy on caught defects</th></tr>"]
    for v, row in result["variants"].items():
        a = row["accuracy"]
        pt, tpt = a["per_type"], a.get("type_accuracy_per_type") or {}
        cells = []
        for t in types:
            c = _num(pt.get(t, {}).get("false_alarm_rate" if t == GOOD else "recall"))
            if t != GOOD and typed:
                c += f" / {_num(tpt[t]['accuracy'])} (n={tpt[t]['n']})" if t in tpt else " / -"
            cells.append(c)
        n = f" (n={a['type_accuracy_n']})" if a.get("type_accuracy_n") else ""
        out.append(f"<tr><td>{_esc(row['title'])}</td>" + "".join(f"<td>{_esc(c)}</td>" for c in cells)
                   + f"<td>{_num(a.get('type_accuracy'))}{n}</td></tr>")
    out.append("</table>")
    return "".join(out)


def banner_list(severity, title, messages):
    """One coloured banner holding a list of messages (the report's and the demo page's)."""
    return (f'<div class="banner {BANNER_CLASS[severity]}"><b>{_esc(title)}</b><ul>'
            + "".join(f"<li>{_esc(m)}</li>" for m in messages) + "</ul></div>")


def _banners(result):
    alerts = result_alerts(result)
    by = {sev: [a["message"] for a in alerts if a["severity"] == sev] for sev in BANNER_CLASS}
    comp = result.get("comparison") or {}
    parts = []
    if by[SEVERE]:
        parts.append(banner_list(SEVERE, "Do not trust these numbers without reading this:", by[SEVERE]))
    if by[WARNING]:
        parts.append(banner_list(WARNING, "Warnings", by[WARNING]))
    if comp and not comp.get("regressions"):
        parts.append(f'<div class="banner green">No regression against the reference '
                     f'<code>{_esc(comp.get("reference_file", ""))}</code> (AUROC drop &le; '
                     f'{comp["rules"]["auroc_drop"]}; latency ratios within this run &le; '
                     f'{comp["rules"]["latency_ratio"]}x the reference\'s).</div>')
    parts += [f'<div class="banner grey">{_esc(n)}</div>' for n in by[NOTE]]
    if not parts:
        parts.append('<div class="banner green">No honesty warning: every variant predicts both classes and beats '
                     'the majority-class baseline.</div>')
    return "".join(parts)


def _backends_block(result):
    if not result.get("backends"):
        return ""
    from benchmarks.backends import format_backends

    lines = format_backends(result["backends"])
    return f"<h2>Backends</h2><p class=\"sub\">{_esc(lines[1])}</p><pre>{_esc(chr(10).join(lines[2:]))}</pre>"


def render_html(result, pngs) -> str:
    m = result.get("machine", {})
    s = result.get("settings", {})
    t = result["test"]
    vers = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    imgs = {k: data_uri(p) for k, p in pngs.items()}
    fig = lambda k, alt: f'<img alt="{_esc(alt)}" src="{imgs[k]}">' if k in imgs else ""  # noqa: E731
    skipped = "".join(f"<li>{_esc(k)}: {_esc(v)}</li>" for k, v in result.get("skipped", {}).items())
    keras = result["variants"].get("keras", {}).get("batch_predict")
    keras_line = (f"<p>Keras <code>model.predict</code> on the whole test set (batch {keras['batch_size']}): "
                  f"{keras['ms_per_image']:.2f} ms per image, {keras['throughput_ips']:.1f} images/s. The table's Keras "
                  f"latency is one image per call.</p>") if keras else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgeinspect bench: {_esc(result['run_name'])}</title>
<style>{CSS}</style></head><body>
<h1>edgeinspect bench: {_esc(result['run_name'])} ({_esc(result['task'])})</h1>
<div class="sub">{t['n']} test images ({t['n_defective']} defective, {t['n_good']} good) from the run's own split;
threshold {result['threshold']:.4g} ({_esc(result.get('threshold_policy'))}); {_esc(result['created'])}</div>
{_banners(result)}
<h2>All variants, same split, same process</h2>
{_headline_table(result)}
<p class="sub">AUROC and balanced accuracy with bootstrap 95% intervals ({s.get('n_boot')} resamples). Acc (baseline):
accuracy beside the accuracy of always predicting the majority class. Latency: {_esc(s.get('latency_path'))}, after
{s.get('warmup')} warm-up calls, {s.get('repeats')} timed calls, {s.get('threads')} threads. "invoke ms": the bare
interpreter's <code>invoke()</code> on the same file; "litert-benchmark ms": the runtime's own benchmark tool.
"agree": share of verdicts equal to the {_esc(result.get('agreement_reference'))} model's.</p>
{keras_line}
{fig('accuracy_latency', 'accuracy vs latency')}
{_backends_block(result)}
<h2>Details</h2>
{_detail_table(result)}
<p class="sub">Memory: {_esc(s.get('memory'))}.</p>
<h2>Per defect type</h2>
{_per_type_table(result)}
{fig('per_type', 'recall per defect type')}
<h2>ROC curves and confusion matrices</h2>
<div class="grid">{fig('roc', 'ROC curves')}{fig('confusion', 'confusion matrices')}</div>
<h2>Sample predictions</h2>
{fig('samples', 'sample predictions')}
{'<h2>Not benchmarked</h2><ul>' + skipped + '</ul>' if skipped else ''}
<h2>Machine</h2>
<p class="sub">{_esc(m.get('cpu'))}, {m.get('cores')} cores; Python {_esc(m.get('python'))}; {_esc(vers)};
{_esc(m.get('platform'))}. Run folder <code>{_esc(result['run'])}</code>; bench took {result.get('elapsed_s', 0):.0f} s.</p>
</body></html>
"""


def write_html(result, out, pngs) -> Path:
    path = Path(out) / "report.html"
    atomic_write_text(path, render_html(result, pngs))
    return path
