"""The demo's landing page (index.html): status, both runs' headline table, the anomaly run's sample grid,
stage times and what to type next; self-contained like every report (images are data URIs)."""
from __future__ import annotations

import os
from pathlib import Path

from benchmarks.report import (BANNER_CLASS, _esc, banner_list, _num, data_uri, result_alerts, severe_variants,
                               showcase_variant)
from edge.atomic import atomic_write_text
from trainer.metrics import NOTE, SEVERE, WARNING

INDEX_CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1f2933;background:#f4f6f8}
main{max-width:1140px;margin:0 auto;padding:0 24px 40px}
header{background:#1f2d3d;color:#fff;padding:22px 0 18px;margin-bottom:18px}
header .in{max-width:1140px;margin:0 auto;padding:0 24px}
header h1{margin:0 0 6px;font-size:24px;font-weight:600} header .sub{color:#b8c4d0;font-size:13.5px}
section{background:#fff;border:1px solid #dde3e9;border-radius:6px;padding:14px 18px 16px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px;color:#1f2d3d}
p.note{color:#52606d;font-size:12.5px;margin:8px 0 0}
.banner{padding:10px 14px;margin:10px 0;border-radius:5px;font-size:14px}
.banner ul{margin:6px 0 0 18px;padding:0}
.red{background:#c62828;color:#fff} .amber{background:#fff4d6;border:1px solid #e0b44c}
.green{background:#e6f4ea;border:1px solid #7cb98a} .grey{background:#eef1f4;border:1px solid #cfd6dd;color:#52606d}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:5px 9px;text-align:right;border-bottom:1px solid #e4e8ec;white-space:nowrap}
th{background:#f0f3f6;color:#3e4c59;font-weight:600;border-bottom:2px solid #cfd6dd}
td:first-child,th:first-child{text-align:left}
tr.run td{background:#e8eef5;font-weight:600;text-align:left;border-top:2px solid #cfd6dd}
tr.run td span{font-weight:400;color:#52606d;margin-left:8px}
tr.device td{font-weight:600} tr.bad td{background:#ffe5e5}
td .ci{color:#7b8794;font-size:11.5px}
a{color:#1565c0}
.samples img{display:block;max-width:100%;margin:0 auto;border:1px solid #e4e8ec}
.stages{display:grid;grid-template-columns:150px 1fr 64px;gap:5px 12px;align-items:center;font-size:13px}
.bar{background:#4a78a8;height:14px;border-radius:2px;min-width:2px} .stages .t{text-align:right;color:#3e4c59}
.stages .total{font-weight:600;border-top:1px solid #cfd6dd;padding-top:4px}
.bars{display:flex;flex-wrap:wrap;gap:6px;margin-top:10px;font-size:12px}
.chip{padding:2px 8px;border-radius:10px;border:1px solid #cfd6dd;background:#f0f3f6}
.chip.ok{background:#e6f4ea;border-color:#7cb98a} .chip.missed{background:#fff4d6;border-color:#e0b44c}
pre{background:#1f2d3d;color:#e4e7eb;padding:12px 14px;border-radius:5px;font-size:12.5px;line-height:1.55;
overflow-x:auto;margin:0} pre .c{color:#8fa3b8}
.two{display:grid;grid-template-columns:1fr 1fr;gap:16px} .two section{margin:0}
"""

STAGE_TITLES = {"synth": "synthetic data", "split": "splits", "train_classifier": "train classifier",
                "train_anomaly": "fit anomaly model", "export": "export all variants", "bench": "benchmark",
                "total": "total"}
QUICK_NOTE = ("--quick is a smoke test (small images, few samples, short training): its numbers show the pipeline "
              "works, not how good the models can be; run without --quick for those.")
# The variant a device runs: its row is bold in the headline table.
DEVICE_VARIANT = "int8"


def _rel(path, base):
    return os.path.relpath(path, base) if path else None


def _demo_banners(results, quick):
    """One status block for the whole demo: every run's alerts by severity, each named by its run."""
    by = {sev: [] for sev in BANNER_CLASS}
    for task, r in results.items():
        for a in result_alerts(r):
            msg = a["message"] if a["severity"] == NOTE else f"{task}: {a['message']}"
            if msg not in by[a["severity"]]:
                by[a["severity"]].append(msg)
    # The smoke-test note comes first: it explains why a --quick run's numbers look poor.
    parts = [f'<div class="banner grey">{_esc(QUICK_NOTE)}</div>'] if quick else []
    if by[SEVERE]:
        parts.append(banner_list(SEVERE, "Read this before quoting any number below:", by[SEVERE]))
    if by[WARNING]:
        parts.append(banner_list(WARNING, "Warnings", by[WARNING]))
    if not by[SEVERE]:
        compared = [t for t, r in results.items() if r.get("comparison")]
        ref = f"; no regression against the reference results ({', '.join(compared)})" if compared else ""
        parts.append(f'<div class="banner green">Both models predict both classes and beat the majority-class '
                     f'baseline in every format{ref}.</div>')
    parts += [f'<div class="banner grey">{_esc(m)}</div>' for m in by[NOTE]]
    return "".join(parts)


def _demo_table(results, base):
    head = ["Format", "Size MB", "AUROC [95% CI]", "Balanced acc. [95% CI]", "Accuracy (majority baseline)",
            "Recall", "p50 ms"]
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for task, r in results.items():
        t = r["test"]
        link = _rel((r.get("outputs") or {}).get("html"), base)
        more = f' &middot; <a href="{_esc(link)}">full report</a>' if link else ""
        out.append(f'<tr class="run"><td colspan="{len(head)}">{_esc(task)} model <span>{t["n"]} test images '
                   f'({t["n_defective"]} defective, {t["n_good"]} good), threshold {r["threshold"]:.3g}'
                   f"{more}</span></td></tr>")
        severe = severe_variants(r)
        for v, row in r["variants"].items():
            a = row["accuracy"]
            ci, bci = a.get("auroc_ci95") or [None, None], a.get("balanced_accuracy_ci95") or [None, None]
            cls = " ".join(c for c, on in (("device", v == DEVICE_VARIANT), ("bad", v in severe)) if on)
            cells = [_esc(row["title"]), _num(row.get("size_mb"), "{:.2f}"),
                     f'{_num(a["auroc"])} <span class="ci">[{_num(ci[0])}&ndash;{_num(ci[1])}]</span>',
                     f'{_num(a["balanced_accuracy"])} <span class="ci">[{_num(bci[0])}&ndash;{_num(bci[1])}]</span>',
                     f'{_num(a["accuracy"])} ({_num(a["majority_baseline"])})', _num(a["recall"]["defective"]),
                     _num(row["latency"].get("p50"), "{:.2f}")]
            out.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _demo_stages(stage_seconds):
    steps = {k: v for k, v in stage_seconds.items() if k != "total"}
    if not steps:
        return "<p class=\"note\">No stage times recorded.</p>"
    top = max(max(steps.values()), 1e-9)
    rows = []
    for k, sec in steps.items():
        bar = f'<div class="bar" style="width:{100 * sec / top:.1f}%"></div>'
        rows.append(f'<div>{_esc(STAGE_TITLES.get(k, k))}</div><div>{bar}</div><div class="t">{sec:.0f} s</div>')
    if "total" in stage_seconds:
        rows.append(f'<div class="total">{STAGE_TITLES["total"]}</div><div class="total"></div>'
                    f'<div class="t total">{stage_seconds["total"]:.0f} s</div>')
    return '<div class="stages">' + "".join(rows) + "</div>"


def _demo_bars(bars, quick):
    if not bars:
        return ""
    chips = "".join(f'<span class="chip {"ok" if ok else "missed"}">{_esc(k)}: {"ok" if ok else "missed"}</span>'
                    for k, ok in bars.items())
    what = "The bars the full demo is meant to clear" + (" (they do not apply to --quick)" if quick else "")
    return f'<p class="note">{what}:</p><div class="bars">{chips}</div>'


def _demo_commands(commands):
    lines = []
    for comment, cmd in commands:
        if comment:
            lines.append(f'<span class="c"># {_esc(comment)}</span>')
        if cmd:
            lines.append(_esc(cmd))
    return "<pre>" + "\n".join(lines) + "</pre>"


def render_demo_index(summary, results, commands, base) -> str:
    """The demo's landing page: status, both runs' headline table, the anomaly run's sample grid with heat
    maps, stage times and what to type next. ``results`` = {task: bench result}; ``commands`` =
    [(comment, command)]; links are relative to ``base`` (the folder index.html is written to)."""
    kind, quick = summary.get("kind", "?"), bool(summary.get("quick"))
    anyr = next(iter(results.values()), {})
    m = anyr.get("machine", {})
    size = "x".join(str(x) for x in anyr.get("input_size", [])) or "?"
    sub = (f"{'quick smoke run' if quick else 'full run'} &middot; synthetic {_esc(kind)} parts &middot; {size} px "
           f"&middot; {_esc(m.get('cpu', '?'))}, {m.get('cores', '?')} cores &middot; "
           f"{_num(summary.get('stage_seconds', {}).get('total'), '{:.0f}')} s end to end &middot; "
           f"{_esc(anyr.get('created', ''))}")
    anomaly = results.get("anomaly")
    samples = ((anomaly or {}).get("outputs") or {}).get("png", {}).get("samples")
    if samples and Path(samples).is_file():
        shown = showcase_variant(anomaly)
        grid = (f'<div class="samples"><img alt="anomaly run: sample predictions with heat maps" '
                f'src="{data_uri(samples)}"></div><p class="note">{_esc(anomaly["variants"][shown]["title"])} '
                f"predictions on the anomaly run's test split, misclassified first (red); the heat map is the "
                f"model's own anomaly map (red = unlike any good part it saw). Trained on good parts only.</p>")
    else:
        grid = '<p class="note">No sample grid: the anomaly run\'s bench wrote no samples.png.</p>'
    links = [(f"{t} report", _rel((r.get("outputs") or {}).get("html"), base)) for t, r in results.items()]
    links = " &middot; ".join(f'<a href="{_esc(h)}">{_esc(lbl)}</a>' for lbl, h in links if h)
    links += ' &middot; <a href="demo_summary.json">demo_summary.json</a>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgeinspect demo ({_esc(kind)})</title>
<style>{INDEX_CSS}</style></head><body>
<header><div class="in"><h1>edgeinspect demo: {_esc(kind)} inspection, trained, exported and benchmarked</h1>
<div class="sub">{sub}</div></div></header>
<main>
{_demo_banners(results, quick)}
<section><h2>Both models, every format, the same test images</h2>
{_demo_table(results, base)}
<p class="note">The classifier learned from 10 defective images; the anomaly model from good images only.
Bold: int8, the file a device runs. AUROC and balanced accuracy with bootstrap 95% intervals; accuracy beside the
share of the larger class (what always guessing it would score). p50: median latency of edgeinspect's own
predict path on one decoded image, on this machine.</p>
{_demo_bars(summary.get("bars"), quick)}
</section>
<section><h2>What the anomaly model sees</h2>
{grid}
</section>
<div class="two">
<section><h2>Where the time went</h2>
{_demo_stages(summary.get("stage_seconds", {}))}
</section>
<section><h2>Reports</h2>
<p>{links}</p>
<p class="note">Each report has the confusion matrices, ROC curves, recall per defect type, cold start and memory,
and the machine it ran on. Every page is a single file: it opens offline.</p>
</section>
</div>
<section><h2>Now try it on your own images</h2>
{_demo_commands(commands)}
</section>
</main></body></html>
"""


def write_demo_index(summary, results, commands, out_path) -> Path:
    out_path = Path(out_path)
    atomic_write_text(out_path, render_demo_index(summary, results, commands, out_path.parent))
    return out_path

