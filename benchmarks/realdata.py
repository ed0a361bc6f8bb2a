"""Real photographs, through the CLI exactly as a user would: split -> train -> export int8 -> predict.

    python benchmarks/realdata.py [--data ../shared/realdata] [--sets casting,screw] [--ablation]
    python benchmarks/realdata.py --protocol supervised --defects-total 10 --modes classifier,anomaly,combined --sets casting
    python benchmarks/realdata.py --protocol supervised --defects-per-type 3 --seeds 0,1,2 --modes anomaly,combined,auto
    python benchmarks/realdata.py --protocol kfold --k 5 --modes anomaly,combined,classifier --sets casting

For every set in DATA (MVTec layout) and every split of it (``--protocol good-only`` / ``supervised``:
one per ``--seeds`` seed; ``kfold``: each of the ``--k`` folds of each seed's fold assignment),
``edgeinspect data split`` once, then for every ``--modes`` mode on that same split ``edgeinspect train
--mode M``, ``edgeinspect export --int8`` and ``edgeinspect predict`` of the int8 file (the edge runtime,
no TensorFlow) on the test split. ``combined`` and ``auto`` are passed to ``train`` as they are (auto's choice is read back from
run.json). Prints one line per (set, mode, evidence) with mean ± sd over the splits (AUROC float/int8,
balanced accuracy beside the majority baseline, recall, specificity, the realised false-reject rate
against the target, type accuracy on caught defects, parity, times), a per-type type-accuracy table
and, for sets with masks, pixel metrics; writes benchmarks/results/realdata_<protocol>.json (good-only:
realdata_anomaly.json; with ``--ablation`` a ``_ablation`` suffix) holding every split's row and the
aggregates. ``--ablation`` repeats the modes with good-only evidence with the patch evidence only and
the global evidence only. The images are read at run time and never copied (their licences allow
evaluation only); the JSON holds numbers only.
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
RESULTS = ROOT / "benchmarks" / "results"


def _cli():
    exe = shutil.which("edgeinspect")
    return [exe] if exe else [sys.executable, "-c", "from edge.cli import main; main()"]


def _run(args, log, ok=(0,)):
    t0 = time.time()
    with open(log, "a") as fh:
        fh.write(f"\n$ edgeinspect {' '.join(map(str, args))}\n")
        fh.flush()
        start = fh.tell()
        code = subprocess.run(_cli() + [str(a) for a in args], stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).returncode
    if code not in ok:
        raise click.ClickException(f"edgeinspect {' '.join(map(str, args[:2]))} exited {code}: "
                                   f"{_last_error(log, start)} (full output in {log})")
    return code, time.time() - t0


def _last_error(log, start):
    """The command's own one-line error (its last ``Error:`` line, else its last line), to repeat on screen."""
    with open(log, errors="replace") as fh:
        fh.seek(start)
        lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
    errors = [ln.removeprefix("Error:").strip() for ln in lines if ln.startswith("Error:")]
    return (errors or lines or ["no output"])[-1]


def default_out(protocol, ablation):
    """good-only keeps the name it has always had: the README and earlier notes quote it."""
    stem = "anomaly" if protocol == "good-only" else protocol
    return RESULTS / f"realdata_{stem}{'_ablation' if ablation else ''}.json"


def one_run(data, split, step, protocol, log):
    """Train one ``plan`` step on its ``split``'s manifest, export it int8 and predict the test split: one row."""
    from benchmarks.realdata_plan import export_args, predict_args
    from benchmarks.realdata_table import from_report, summary, type_accuracy
    from trainer.data.run_contract import GOOD, load_manifest

    name, repeat, manifest = split["set"], split["repeat"], split["manifest"]
    root, run, mode, evidence = data / name, step["run"], step["mode"], step["evidence"]
    if run.exists():
        shutil.rmtree(run)
    _, train_s = _run(step["train"], log)
    code, export_s = _run(export_args(run), log, ok=(0, 2))
    int8 = json.loads((run / "export" / "export_report.json").read_text())["variants"]["int8"]
    m = load_manifest(manifest)
    test = [f for f in m["files"] if f["split"] == "test"]
    pred_json = run / "predict_int8.json"
    _run(predict_args(run / "export" / int8["file"], [root / f["path"] for f in test], pred_json), log, ok=(0, 1))
    pred = json.loads(pred_json.read_text())
    by_path = {Path(r["path"]).resolve(): r for r in pred["results"]}
    records = [by_path[(root / f["path"]).resolve()] for f in test]
    y = [int(f["label"]) for f in test]
    thr8 = float(pred["model"].get("threshold", 0.5))
    metrics = json.loads((run / "metrics.json").read_text())
    run_info = json.loads((run / "run.json").read_text())
    cal = metrics.get("calibration") or {}  # the good-only false-reject target (anomaly evidence only)
    chosen = metrics.get("combined") or cal  # combined mode: the cross-validated threshold's own record
    typed, why = type_accuracy(test, records, n_types=len([c for c in m["classes"] if c != GOOD]))
    pixel = _pixel(run / "export" / int8["file"], test, root, metrics.get("pixel_test"))
    return {"set": name, "mode": mode, "evidence": evidence, "protocol": protocol, "seed": repeat.seed,
            "fold": repeat.fold, "mode_choice": run_info.get("mode_choice"), "task": run_info.get("task"),
            "labels": run_info.get("labels"), "split_params": m["params"],
            "n_train_defective": sum(1 for f in m["files"] if f["split"] != "test" and f["label"] == 1),
            "n_test": len(y), "n_defective": sum(y),
            "float": from_report(metrics["test"]) if metrics.get("test") else None,
            "int8": summary(y, [float(r["score"]) for r in records], thr8), "int8_threshold": thr8,
            "type_accuracy": typed, "type_accuracy_note": why,
            "target_false_reject": cal.get("max_false_reject"),
            "expected_false_reject": chosen.get("expected_false_reject"),
            "expected_false_reject_ci95": chosen.get("expected_false_reject_ci95"),
            "expected_recall": chosen.get("expected_recall"), "expected_recall_ci95": chosen.get("expected_recall_ci95"),
            "parity": int8["status"], "agreement": int8["parity"]["agreement"], "export_exit": code,
            "flips": int8["parity"].get("flips"),
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


@click.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=SHARED / "realdata",
              show_default=True, help="Folder of MVTec-layout sets.")
@click.option("--sets", default=None, help="Comma-separated set names (default: every set in DATA).")
@click.option("--modes", default="anomaly", show_default=True,
              help="Comma-separated train modes, each run on the same split: anomaly, combined, classifier, auto.")
@click.option("--protocol", type=click.Choice(["good-only", "supervised", "kfold"]), default="good-only",
              show_default=True, help="Split protocol (edgeinspect data split --protocol).")
@click.option("--defects-total", type=click.IntRange(1), default=None,
              help="supervised: defective images moved into train in all (data split --defects-total).")
@click.option("--defects-per-type", type=click.IntRange(1), default=None,
              help="supervised: defective images of each type moved into train (default: data split's).")
@click.option("--k", "k", type=click.IntRange(2), default=None, help="kfold: number of folds (default: data split's).")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated split seeds, one repeat each.")
@click.option("--ablation", is_flag=True, help="Also run the patch-only and global-only evidence.")
@click.option("--weights", default=str(WEIGHTS), show_default=True, help="train --weights (imagenet | none | PATH).")
@click.option("--input-size", type=click.IntRange(32), default=None, help="train --input-size (default: train's).")
@click.option("--epochs", type=click.IntRange(0), default=None, help="train --epochs (default: train's).")
@click.option("--fine-tune-epochs", type=click.IntRange(0), default=None,
              help="train --fine-tune-epochs (default: train's).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where runs and logs go (default: a temporary folder).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Result JSON [default: benchmarks/results/realdata_<protocol>.json; good-only: "
                   "realdata_anomaly.json].")
def main(data, sets, modes, protocol, defects_total, defects_per_type, k, seeds, ablation, weights, input_size,
         epochs, fine_tune_epochs, work, out):
    from benchmarks.realdata_plan import K_FOLDS, MODES, check_args, parse_list, plan
    from benchmarks.realdata_table import aggregate, format_table
    from edge.atomic import atomic_write_json, utc_stamp

    modes = parse_list(modes, "--modes", MODES)
    seeds = parse_list(seeds, "--seeds", cast=int)
    check_args(protocol, modes, defects_total=defects_total, defects_per_type=defects_per_type, k=k,
               ablation=ablation)
    if not data.is_dir():
        raise click.ClickException(f"{data}: no such folder; pass --data with MVTec-layout sets")
    names = sets.split(",") if sets else sorted(p.name for p in data.iterdir() if (p / "train" / "good").is_dir())
    missing = [n for n in names if not (data / n / "train" / "good").is_dir()]
    if missing:
        raise click.ClickException(f"{data / missing[0]}: no train/good folder; pass --sets with set names in {data}")
    train_options = [(flag, v) for flag, v in (("--input-size", input_size), ("--epochs", epochs),
                                               ("--fine-tune-epochs", fine_tune_epochs)) if v is not None]
    out = out or default_out(protocol, ablation)
    work = work or Path(tempfile.mkdtemp(prefix="edgeinspect-realdata-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "realdata.log"
    rows = []
    for split in plan(data, names, protocol, modes, seeds, work, weights=weights, k=k, defects_total=defects_total,
                      defects_per_type=defects_per_type, ablation=ablation, train_options=train_options):
        _run(split["split"], log)
        for step in split["runs"]:
            click.echo(f"[{split['set']} {split['repeat'].tag}] {step['mode']} {step['evidence']}: train -> "
                       f"export --int8 -> predict (log: {log})", err=True)
            rows.append(one_run(data, split, step, protocol, log))
            click.echo(format_table(rows[-1:]).splitlines()[2], err=True)
    click.echo(format_table(rows))
    atomic_write_json(out, {"protocol": protocol, "modes": modes, "seeds": seeds,
                            "k": (k or K_FOLDS) if protocol == "kfold" else None,
                            "defects_total": defects_total, "defects_per_type": defects_per_type,
                            "weights": Path(weights).name, "train_options": dict(train_options),
                            "rows": rows, "aggregates": aggregate(rows), "created": utc_stamp()})
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
