"""Real photographs, through the CLI exactly as a user would: split -> train -> export int8 -> predict.

    python benchmarks/realdata.py [--data ../shared/realdata] [--sets casting,screw] [--ablation]

For every set in DATA (MVTec layout) in good-only anomaly mode: ``edgeinspect data split --protocol
good-only``, ``edgeinspect train --mode anomaly``, ``edgeinspect export --int8`` and ``edgeinspect
predict`` of the int8 file (the edge runtime, no TensorFlow) on the test split. Prints a table (AUROC
float/int8, balanced accuracy beside the majority baseline, recall, specificity, the realised
false-reject rate against the target, parity, times) and writes
benchmarks/results/realdata_anomaly.json. ``--ablation`` repeats each set with the patch evidence
only and the global evidence only. The images are read at run time and never copied (their
licences allow evaluation only); the JSON holds numbers only.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"
OUT = ROOT / "benchmarks" / "results" / "realdata_anomaly.json"
EVIDENCE = ("patch+global", "patch", "global")


def _cli():
    exe = shutil.which("edgeinspect")
    return [exe] if exe else [sys.executable, "-c", "from edge.cli import main; main()"]


def _run(args, log, ok=(0,)):
    t0 = time.time()
    with open(log, "a") as fh:
        fh.write(f"\n$ edgeinspect {' '.join(map(str, args))}\n")
        fh.flush()
        code = subprocess.run(_cli() + [str(a) for a in args], stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).returncode
    if code not in ok:
        raise click.ClickException(f"edgeinspect {args[0]} exited {code}; see {log}")
    return code, time.time() - t0


def one_set(data, name, work, evidence, log):
    from trainer.data.run_contract import load_manifest

    root = data / name
    manifest = work / f"{name}_good_only.json"
    if not manifest.exists():
        _run(["data", "split", root, "--protocol", "good-only", "--out", manifest], log)
    cfg = work / f"{name}_{evidence}.config.json"
    cfg.write_text(json.dumps({"anomaly": {"evidence": evidence}}))
    run = work / "runs" / f"{name}_{evidence.replace('+', '_')}"
    if run.exists():
        shutil.rmtree(run)
    _, train_s = _run(["train", "--config", cfg, "--data", root, "--manifest", manifest, "--mode", "anomaly",
                       "--weights", WEIGHTS, "--project", run.parent, "--name", run.name], log)
    code, export_s = _run(["export", run, "--int8", "--no-fail"], log, ok=(0, 2))
    report = json.loads((run / "export" / "export_report.json").read_text())
    int8 = report["variants"]["int8"]
    m = load_manifest(manifest)
    test = [f for f in m["files"] if f["split"] == "test"]
    pred_json = work / f"{name}_{evidence}_predict.json"
    _run(["predict", run / "export" / int8["file"], *[root / f["path"] for f in test], "--json", pred_json], log,
         ok=(0, 1))
    by_path = {Path(r["path"]).resolve(): r for r in json.loads(pred_json.read_text())["results"]}
    y = [int(f["label"]) for f in test]
    s8 = [float(by_path[(root / f["path"]).resolve()]["score"]) for f in test]
    metrics = json.loads((run / "metrics.json").read_text())
    cal = metrics["calibration"]
    pixel = _pixel(run / "export" / int8["file"], test, root, metrics.get("pixel_test"))
    thr8 = float(json.loads(pred_json.read_text())["model"].get("threshold", 0.5))
    return {"set": name, "evidence": evidence, "n_test": len(y), "n_defective": sum(y),
            "float": _summary(y, metrics["test_scores"], 0.5), "int8": _summary(y, s8, thr8),
            "int8_threshold": thr8, "target_false_reject": cal["max_false_reject"],
            "expected_false_reject": cal["expected_false_reject"],
            "expected_false_reject_ci95": cal["expected_false_reject_ci95"],
            "parity": int8["status"], "agreement": int8["parity"]["agreement"], "export_exit": code,
            "edgetpu_preflight": (int8.get("edgetpu_preflight") or {}).get("summary"),
            "train_s": round(train_s, 1), "export_s": round(export_s, 1), "int8_mb": round(int8["size_mb"], 2),
            **({"pixel": pixel} if pixel else {})}


def _pixel(model_path, test, root, float_rep):
    """Pixel AUROC / AUPRO of the float model (from train's metrics.json) and of the int8 file's maps
    (the edge runtime, in process), for sets whose defects have ``ground_truth`` masks; else None."""
    import numpy as np

    from edge.runtime import EdgeModel
    from trainer.pixel_metrics import pixel_report

    if not float_rep:
        return None
    model = EdgeModel(str(model_path))
    maps = np.stack([model.predict(str(root / f["path"])).anomaly_map for f in test])
    return {"float": float_rep, "int8": pixel_report(maps, test, root, tuple(float_rep["resolution"]))}


def _summary(y, scores, threshold):
    import numpy as np

    from trainer.metrics import binary_report

    rep = binary_report(y, scores, threshold)
    y, pred = np.asarray(y), np.asarray(scores) >= threshold
    return {"auroc": rep["auroc"], "balanced_accuracy": rep["balanced_accuracy"], "accuracy": rep["accuracy"],
            "majority_baseline": rep["majority_baseline"], "recall": float(pred[y == 1].mean()),
            "specificity": float(1 - pred[y == 0].mean()), "false_reject": float(pred[y == 0].mean())}


def format_table(rows):
    head = ("set", "evidence", "AUROC fp32", "AUROC int8", "bal.acc fp32", "bal.acc int8 (baseline)", "recall",
            "specificity", "false-reject (target)", "parity (agree)", "train s", "export s")
    out = [head]
    for r in rows:
        f, q = r["float"], r["int8"]
        out.append((r["set"], r["evidence"], f"{f['auroc']:.3f}", f"{q['auroc']:.3f}", f"{f['balanced_accuracy']:.3f}",
                    f"{q['balanced_accuracy']:.3f} ({q['majority_baseline']:.3f})", f"{q['recall']:.3f}",
                    f"{q['specificity']:.3f}", f"{q['false_reject']:.3f} ({r['target_false_reject']:.3f})",
                    f"{r['parity']} ({r['agreement']:.3f})", f"{r['train_s']:.0f}", f"{r['export_s']:.0f}"))
    pix = [r for r in rows if r.get("pixel")]
    if pix:  # only sets with ground_truth masks have them: a second, short table
        out.append(("",) * len(head))
        out.append(("set", "evidence", "pixel AUROC fp32", "pixel AUROC int8", "AUPRO fp32", "AUPRO int8",
                    "masked", "", "", "", "", ""))
        for r in pix:
            f, q = r["pixel"]["float"], r["pixel"]["int8"]
            out.append((r["set"], r["evidence"], f"{f['pixel_auroc']:.3f}", f"{q['pixel_auroc']:.3f}",
                        f"{f['aupro']:.3f}", f"{q['aupro']:.3f}", str(f["masked"]), "", "", "", "", ""))
    widths = [max(len(str(row[i])) for row in out) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in out]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


@click.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=SHARED / "realdata",
              show_default=True, help="Folder of MVTec-layout sets.")
@click.option("--sets", default=None, help="Comma-separated set names (default: every set in DATA).")
@click.option("--ablation", is_flag=True, help="Also run the patch-only and global-only evidence.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where runs and logs go (default: a temporary folder).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=OUT, show_default=True)
def main(data, sets, ablation, work, out):
    from edge.atomic import atomic_write_json

    if not data.is_dir():
        raise click.ClickException(f"{data}: no such folder; pass --data with MVTec-layout sets")
    names = sets.split(",") if sets else sorted(p.name for p in data.iterdir() if (p / "train" / "good").is_dir())
    work = work or Path(tempfile.mkdtemp(prefix="edgeinspect-realdata-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "realdata.log"
    rows = []
    for name in names:
        for evidence in (EVIDENCE if ablation else EVIDENCE[:1]):
            click.echo(f"[{name}] {evidence}: split -> train -> export --int8 -> predict (log: {log})", err=True)
            rows.append(one_set(data, name, work, evidence, log))
            click.echo(format_table(rows[-1:]).splitlines()[-1], err=True)
    click.echo(format_table(rows))
    atomic_write_json(out, {"mode": "anomaly (good images only)", "weights": WEIGHTS.name, "rows": rows,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
