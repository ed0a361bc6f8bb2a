"""``edgeinspect demo``: synthetic parts -> classifier + anomaly model -> every TFLite variant -> bench reports.

Offline and self-checking: it draws the synthetic hazelnut set, splits it the way
the originating report did (10 defective images in the classifier's training data,
good-only for the anomaly model), trains both, exports every variant, benchmarks
them side by side and compares against the reference numbers committed in
``benchmarks/results/``. Defaults were sized from measured stage times so the whole
run fits in 15 minutes on a 2-core CPU; ``--quick`` is a smoke test of the same path.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WEIGHTS_ENV = "EDGEINSPECT_WEIGHTS"

# What the full demo does (sizes measured on the 2-core reference machine, see results/README.md).
FULL = {
    "synth": {"size": 256, "n_train": 391, "n_test_good": 40, "n_per_defect": 17},
    "input_size": 224, "alpha": 1.0,
    "classifier": {},          # the trainer's own defaults (epochs, fine-tuning, threshold policy)
    "anomaly": {},             # trainer.anomaly defaults
    "bench": {"repeats": 50, "warmup": 5, "keras_repeats": 20, "n_boot": 1000},
}
QUICK = {
    "synth": {"size": 128, "n_train": 60, "n_test_good": 8, "n_per_defect": 4},
    "input_size": 96, "alpha": 1.0,   # the offline weights exist for alpha 1.0 only; 96 px keeps it fast
    "classifier": {"epochs": 4, "aug_copies": 0, "patience": 2, "fine_tune_epochs": 0},
    "anomaly": {"bank_size": 256},
    "bench": {"repeats": 10, "warmup": 2, "keras_repeats": 10, "n_boot": 200},
}
# The bar this demo is meant to clear (printed and written to demo_summary.json).
BARS = {"classifier": {"int8_balanced_accuracy": 0.90, "int8_auroc": 0.95},
        "anomaly": {"int8_auroc": 0.98}, "int8_speedup_vs_keras_predict": 10.0}


def reference_path(kind, task, quick=False):
    return RESULTS_DIR / f"demo_{kind}_{task}{'_quick' if quick else ''}.json"


def next_commands(weights=None) -> list:
    """[(comment, command)] the landing page shows: the same pipeline on the reader's own photos.
    The weights line repeats what this demo used, so an offline machine keeps working offline."""
    import shlex

    return [
        ("your photos in the MVTec AD layout: parts/train/good/, parts/test/good/, parts/test/<defect>/", None),
        (None, f"W={shlex.quote(str(weights or 'imagenet'))}   "
               "# ImageNet weights: 'imagenet' downloads once, or an .h5 file"),
        ("what was found: class counts, image sizes, unreadable files", "edgeinspect data info parts"),
        ("good photos only: an anomaly model with heat maps (no defect photos needed for training)", None),
        (None, "edgeinspect data split parts --protocol good-only --out parts/split.json"),
        (None, 'edgeinspect train --data parts --manifest parts/split.json --mode anomaly --weights "$W" --name parts'),
        ("or, with some defect photos: a classifier that also names the defect type", None),
        (None, "edgeinspect data split parts --protocol supervised --defects-total 10 --out parts/split_sup.json"),
        (None, 'edgeinspect train --data parts --manifest parts/split_sup.json --weights "$W" --name parts_cls'),
        ("float32 / float16 / int8 TFLite (+ Edge TPU when its compiler is installed), each parity-checked",
         "edgeinspect export runs/train/parts"),
        ("every format side by side on the run's own test split, like the table above",
         "edgeinspect bench runs/train/parts"),
        ("inspect new photos on the device (no TensorFlow needed), with heat-map overlays",
         "edgeinspect predict runs/train/parts/export/model_int8.tflite new_parts/ --save-maps maps/"),
        ("run it on a folder a camera writes into: a result log, and defective images copied aside",
         "edgeinspect watch --model runs/train/parts/export/model_int8.tflite --source /srv/camera "
         "--log results.jsonl --rejects rejects/"),
    ]


def _synth(root: Path, kind, params, say):
    """Reuse an identical synthetic set (it is deterministic), else draw it."""
    from trainer.data.synth import generate

    meta = root / "synth.json"
    if meta.is_file():
        old = json.loads(meta.read_text())
        if old.get("kind") == kind and all(old.get(k) == v for k, v in params.items()) and old.get("seed") == 0:
            say(f"synthetic {kind} set already at {root} (same parameters): reused")
            return root
    workers = max(1, min(4, os.cpu_count() or 1))
    return generate(root, kind=kind, seed=0, progress=True, workers=workers, **params)


def _splits(root: Path, out: Path, say):
    from trainer.data.split import count_table, make_split
    from trainer.data.run_contract import save_manifest

    sup = make_split(root, "supervised", seed=0, defects_total=10)
    good = make_split(root, "good-only", seed=0)
    paths = {"supervised": save_manifest(sup, out / "splits" / "supervised.json"),
             "good-only": save_manifest(good, out / "splits" / "good_only.json")}
    for name, m in (("supervised (classifier, 10 defective in train)", sup), ("good-only (anomaly)", good)):
        rows = [r for r in count_table(m) if r[2]]
        say(f"split {name}: " + ", ".join(f"{s}/{c} {n}" for s, c, n in rows))
    return paths


def _render_check(pages, say) -> dict:
    """Screenshot each page in headless Chromium (PAGE.png beside it), so a page that does not render is seen."""
    from benchmarks.render_check import find_chromium, screenshot

    if find_chromium() is None:
        say("render check skipped: Chromium not installed (apt-get install -y chromium)")
        return {}
    shots = {}
    for page in pages:
        try:
            shots[str(page)] = str(screenshot(page, page.with_suffix(".png")))
        except RuntimeError as exc:
            say(f"render check of {page} failed: {exc}")
    return shots


def _bar_check(summary):
    out = {}
    c = summary["runs"].get("classifier", {}).get("int8")
    a = summary["runs"].get("anomaly", {}).get("int8")
    if c:
        out["classifier_int8_balanced_accuracy>=0.90"] = c["balanced_accuracy"] >= BARS["classifier"]["int8_balanced_accuracy"]
        out["classifier_int8_auroc>=0.95"] = c["auroc"] >= BARS["classifier"]["int8_auroc"]
    if a:
        out["anomaly_int8_auroc>=0.98"] = a["auroc"] >= BARS["anomaly"]["int8_auroc"]
    for task in ("classifier", "anomaly"):
        sp = summary["runs"].get(task, {}).get("int8_speedup_vs_keras_predict")
        if sp is not None:
            out[f"{task}_int8_p50_10x_below_keras_predict"] = sp >= BARS["int8_speedup_vs_keras_predict"]
    return out


def _run_summary(result):
    rows = {}
    for v, row in result["variants"].items():
        a = row["accuracy"]
        rows[v] = {"auroc": a["auroc"], "balanced_accuracy": a["balanced_accuracy"], "accuracy": a["accuracy"],
                   "majority_baseline": a["majority_baseline"], "recall": a["recall"]["defective"],
                   "p50_ms": row["latency"].get("p50"), "size_mb": row["size_mb"]}
    s = {"report": result["outputs"]["html"], "bench_json": result["outputs"]["json"], "variants": rows,
         "warnings": result["warnings"], "int8": rows.get("int8")}
    if "int8" in rows and "keras" in rows and rows["int8"]["p50_ms"]:
        s["int8_speedup_vs_keras_predict"] = rows["keras"]["p50_ms"] / rows["int8"]["p50_ms"]
    comp = result.get("comparison")
    if comp:
        s["regressions"] = comp["regressions"]
    return s


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", "out_dir", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where data, runs and reports go.")
@click.option("--quick", is_flag=True, help="A much smaller run (96 px, few images and epochs): a 2-3 minute smoke test.")
@click.option("--weights", default=None,
              help=f"ImageNet MobileNetV2 weights: 'imagenet' (Keras downloads once) or an offline .h5 file "
                   f"[default: ${WEIGHTS_ENV}, else imagenet].")
@click.option("--kind", default="hazelnut", show_default=True, type=click.Choice(["hazelnut", "casting"]),
              help="Which synthetic part.")
@click.option("--compare/--no-compare", "do_compare", default=True, show_default=True,
              help="Compare against the reference results in benchmarks/results/ and flag regressions.")
@click.option("--save-reference", is_flag=True, help="Write the bench numbers as the new reference in benchmarks/results/.")
@click.option("--no-render-check", is_flag=True,
              help="Skip the headless-Chromium screenshot of index.html and each report.")
def demo(out_dir, quick, weights, kind, do_compare, save_reference, no_render_check):
    """Offline end-to-end demo: synthetic data, train, export, benchmark, report.

    \b
    Draws a synthetic MVTec-style set, trains a MobileNetV2 defect classifier
    (10 defective images in training) and a good-images-only anomaly model, exports
    float32/float16/dynamic/int8 (and Edge TPU when the compiler is installed),
    benchmarks every variant and writes report.html for each plus index.html.
    """
    from edge.atomic import atomic_write_json
    from trainer.config import TrainConfig

    say = click.echo
    plan = QUICK if quick else FULL
    weights = weights or os.environ.get(WEIGHTS_ENV) or "imagenet"
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    t_all = time.perf_counter()

    def stage(name):
        say(f"\n=== {name} ===")
        return time.perf_counter()

    say(f"edgeinspect demo ({'quick' if quick else 'full'}): {kind}, {plan['input_size']} px, weights {weights}, "
        f"out {out}")
    t = stage("1/6 synthetic data")
    root = _synth(out / "data" / kind, kind, plan["synth"], say)
    times["synth"] = time.perf_counter() - t

    t = stage("2/6 splits")
    manifests = _splits(root, out, say)
    times["split"] = time.perf_counter() - t

    common = dict(data=str(root), alpha=plan["alpha"], input_size=plan["input_size"], weights=weights, seed=0,
                  project=str(out / "runs"))
    t = stage("3/6 train the classifier")
    from trainer.train import train_classifier

    cfg = TrainConfig(**common, mode="classifier", protocol="supervised", defects_total=10,
                      manifest=str(manifests["supervised"]), name="classifier", **plan["classifier"])
    runs = {"classifier": Path(train_classifier(cfg))}
    times["train_classifier"] = time.perf_counter() - t

    t = stage("4/6 fit the anomaly model (good images only)")
    from trainer.anomaly import train_anomaly

    cfg = TrainConfig(**common, mode="anomaly", protocol="good-only", manifest=str(manifests["good-only"]),
                      name="anomaly", anomaly=dict(plan["anomaly"]))
    runs["anomaly"] = Path(train_anomaly(cfg))
    times["train_anomaly"] = time.perf_counter() - t

    t = stage("5/6 export every variant")
    from export.convert import export_run
    from export.variants import CONVERTED

    exports = {}
    for task, run in runs.items():
        rep = export_run(run, variants=CONVERTED, edgetpu="auto", progress=True, no_fail=True)
        exports[task] = {"status": rep.get("status"), "notes": rep.get("notes", [])}
    times["export"] = time.perf_counter() - t

    t = stage("6/6 benchmark every variant")
    from benchmarks.bench import run_bench
    from benchmarks.compare import slim
    from benchmarks.tables import format_table
    from edge.atomic import atomic_write_json as _wj

    results, summary_runs = {}, {}
    for task, run in runs.items():
        ref = reference_path(kind, task, quick)
        compare_to = ref if (do_compare and ref.is_file() and not save_reference) else None
        if do_compare and compare_to is None and not save_reference:
            say(f"(no reference {ref.name} in benchmarks/results/: nothing to compare against)")
        r = run_bench(run, progress=True, compare_to=compare_to, **plan["bench"])
        results[task] = r
        summary_runs[task] = _run_summary(r)
        if save_reference:
            _wj(ref, slim(r))
            say(f"reference written: {ref}")
    times["bench"] = time.perf_counter() - t

    times["total"] = time.perf_counter() - t_all
    summary = {"kind": kind, "quick": quick, "weights": weights, "plan": plan, "out": str(out),
               "runs": summary_runs, "run_dirs": {k: str(v) for k, v in runs.items()}, "exports": exports,
               "stage_seconds": {k: round(v, 1) for k, v in times.items()}}
    summary["bars"] = _bar_check(summary)

    from benchmarks.demo_index import write_demo_index

    index = write_demo_index(summary, results, next_commands(weights), out / "index.html")
    summary["index"] = str(index)
    summary["screenshots"] = {} if no_render_check else _render_check(
        [index] + [Path(r["outputs"]["html"]) for r in results.values()], say)
    atomic_write_json(out / "demo_summary.json", summary)

    for task, r in results.items():
        say("")
        say(format_table(r))
    say("\nstage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))
    if quick:
        say("bars (apply to the full demo; --quick is a smoke test): "
            + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in summary["bars"].items()))
    else:
        say("bars: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in summary["bars"].items()))
    for task, r in results.items():
        say(f"{task} report: {r['outputs']['html']}")
    say(f"index (start here): {index}\nsummary: {out / 'demo_summary.json'}")
