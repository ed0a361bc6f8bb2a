"""Re-teach from the field on real photographs: a good-only run on half of train/good, updated with the other half.

    python benchmarks/realdata_update.py [--data ../shared/realdata] [--sets casting] [--repeats 3]

For every set: ``edgeinspect data split --protocol good-only``, a manifest that keeps every other good
image of the fitted splits (train + val), ``edgeinspect train --mode anomaly`` on it and ``export --int8``
(the parent, as deployed); then ``repeats`` times ``edgeinspect train --update PARENT --add-good HALF``
(the held-back half, through symlinks: nothing is copied) followed by ``export --int8`` of the new run,
timed together (the bar: median <= 60 s on 2 cores). Before and after: the false-reject rate on test
good images and AUROC, of the float model (the run's test report) and of the int8 file through
``edgeinspect predict`` (the edge runtime). Prints a table and writes
benchmarks/results/realdata_update.json (numbers only: no image or anything derived from one).
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "realdata_update.json"
BAR_S = 60.0
MAX_AUROC_FALL = 0.005


def half_manifest(manifest_path, out_path, link_dir):
    """Keep every other fitted good image (sorted by path); symlink the rest into ``link_dir``. Returns counts."""
    from trainer.data.run_contract import build_manifest, load_manifest, resolve_root, save_manifest

    m = load_manifest(manifest_path)
    root = resolve_root(m, manifest_path)
    fitted = sorted((f for f in m["files"] if f["split"] in ("train", "val") and f["label"] == 0),
                    key=lambda f: f["path"])
    held = {f["path"] for f in fitted[1::2]}
    link_dir.mkdir(parents=True, exist_ok=True)
    for f in fitted[1::2]:
        dst = link_dir / Path(f["path"]).name
        if not dst.exists():
            dst.symlink_to((root / f["path"]).resolve())
    files = [f for f in m["files"] if f["path"] not in held]
    save_manifest(build_manifest(root, m["protocol"], m["seed"], dict(m["params"], held_back=len(held)), files),
                  out_path)
    return {"fitted_parent": len(fitted) - len(held), "added": len(held)}


def int8_test(run, root, test, work, log, tag):
    """Float and int8 summaries of a run on the test split (int8 through ``edgeinspect predict``)."""
    from benchmarks.realdata import _run
    from benchmarks.realdata_table import summary

    report = json.loads((run / "export" / "export_report.json").read_text())
    int8 = report["variants"]["int8"]
    pred_json = work / f"{tag}_predict.json"
    _run(["predict", run / "export" / int8["file"], *[root / f["path"] for f in test], "--json", pred_json], log,
         ok=(0, 1))
    pred = json.loads(pred_json.read_text())
    by_path = {Path(r["path"]).resolve(): r for r in pred["results"]}
    y = [int(f["label"]) for f in test]
    s8 = [float(by_path[(root / f["path"]).resolve()]["score"]) for f in test]
    metrics = json.loads((run / "metrics.json").read_text())
    return {"float": summary(y, metrics["test_scores"], 0.5),
            "int8": summary(y, s8, float(pred["model"].get("threshold", 0.5))),
            "parity": int8["status"], "agreement": int8["parity"]["agreement"]}


def one_set(data, name, work, repeats, log, weights):
    from benchmarks.realdata import _run
    from trainer.data.run_contract import load_manifest

    root = data / name
    full, half = work / f"{name}_good_only.json", work / f"{name}_half.json"
    if not full.exists():
        _run(["data", "split", root, "--protocol", "good-only", "--out", full], log)
    counts = half_manifest(full, half, work / f"{name}_second_half")
    runs = work / "runs"
    _, train_s = _run(["train", "--data", root, "--manifest", half, "--mode", "anomaly", "--weights", weights,
                       "--project", runs, "--name", name], log)
    parent = max((p for p in runs.iterdir() if p.name.startswith(name) and (p / "run.json").is_file()),
                 key=lambda p: p.stat().st_mtime)
    _, parent_export_s = _run(["export", parent, "--int8", "--no-fail"], log, ok=(0, 2))
    test = [f for f in load_manifest(half)["files"] if f["split"] == "test"]
    before = int8_test(parent, root, test, work, log, f"{name}_parent")
    times, children, gate = [], [], []
    for i in range(repeats):
        t0 = time.time()
        _run(["train", "--update", parent, "--add-good", work / f"{name}_second_half"], log)
        child = max((p for p in runs.iterdir() if p.name.startswith(name) and p != parent
                     and (p / "run.json").is_file()), key=lambda p: p.stat().st_mtime)
        update_s = time.time() - t0
        code, export_s = _run(["export", child, "--int8", "--no-fail"], log, ok=(0, 2))
        times.append({"update_s": round(update_s, 1), "export_int8_s": round(export_s, 1),
                      "total_s": round(update_s + export_s, 1), "export_exit": code})
        reg = json.loads((child / "export" / "export_report.json").read_text()).get("regression") or {}
        gate.append({"status": reg.get("status"), "golden_flipped": len(reg.get("golden_flipped", [])),
                     "golden": (reg.get("images") or {}).get("golden")})
        children.append(child)
    after = int8_test(children[0], root, test, work, log, f"{name}_child")
    total = statistics.median(t["total_s"] for t in times)
    return {"set": name, **counts, "n_test": len(test), "n_test_good": sum(1 for f in test if f["label"] == 0),
            "before": before, "after": after,
            "false_reject_float": [before["float"]["false_reject"], after["float"]["false_reject"]],
            "false_reject_int8": [before["int8"]["false_reject"], after["int8"]["false_reject"]],
            "auroc_change_float": after["float"]["auroc"] - before["float"]["auroc"],
            "auroc_change_int8": after["int8"]["auroc"] - before["int8"]["auroc"],
            "parent_train_s": round(train_s, 1), "parent_export_int8_s": round(parent_export_s, 1),
            "update_plus_export": times, "median_update_plus_export_s": total,
            "bar_s": BAR_S, "within_bar": total <= BAR_S, "regression_gate": gate}


def format_table(rows):
    head = ("set", "fit+added", "false-reject fp32 before->after", "int8 before->after", "AUROC fp32 before->after",
            "int8 before->after", "update+export s (median)", "gate")
    out = [head]
    for r in rows:
        b, a = r["before"], r["after"]
        out.append((r["set"], f"{r['fitted_parent']}+{r['added']}",
                    f"{b['float']['false_reject']:.3f} -> {a['float']['false_reject']:.3f}",
                    f"{b['int8']['false_reject']:.3f} -> {a['int8']['false_reject']:.3f}",
                    f"{b['float']['auroc']:.4f} -> {a['float']['auroc']:.4f}",
                    f"{b['int8']['auroc']:.4f} -> {a['int8']['auroc']:.4f}",
                    f"{r['median_update_plus_export_s']:.1f} " + "/".join(f"{t['total_s']:.0f}" for t in r["update_plus_export"]),
                    ",".join(f"{g['status']}({g['golden_flipped']})" for g in r["regression_gate"])))
    widths = [max(len(str(row[i])) for row in out) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in out]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


@click.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=ROOT.parent / "shared" / "realdata",
              show_default=True, help="Folder of MVTec-layout sets.")
@click.option("--sets", default="casting", show_default=True, help="Comma-separated set names.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1),
              help="Updates (each followed by export --int8) timed; the median is the number.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where runs and logs go (default: a temporary folder).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="MobileNetV2 no-top weights file (default: the one benchmarks/realdata.py uses).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=OUT, show_default=True)
def main(data, sets, repeats, work, weights, out):
    import os
    import platform

    from edge.atomic import atomic_write_json

    if not data.is_dir():
        raise click.ClickException(f"{data}: no such folder; pass --data with MVTec-layout sets")
    from benchmarks.realdata import WEIGHTS

    weights = weights or WEIGHTS
    work = work or Path(tempfile.mkdtemp(prefix="edgeinspect-realdata-update-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "realdata_update.log"
    rows = []
    for name in sets.split(","):
        click.echo(f"[{name}] split -> half -> train -> export --int8 -> {repeats} x (update + export --int8) "
                   f"(log: {log})", err=True)
        rows.append(one_set(data, name, work, repeats, log, weights))
        click.echo(format_table(rows[-1:]).splitlines()[-1], err=True)
    click.echo(format_table(rows))
    atomic_write_json(out, {"what": "good-only run on half of train/good, train --update with the other half",
                            "bar_update_plus_export_s": BAR_S, "max_auroc_fall": MAX_AUROC_FALL, "rows": rows,
                            "machine": {"cpus": os.cpu_count(), "load_avg_1min_at_end": os.getloadavg()[0],
                                        "platform": platform.platform()},
                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
