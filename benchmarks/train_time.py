"""Classifier training at full size: where the time goes, and whether the model is any good.

    python benchmarks/train_time.py [--data DIR] [--per-type]

Synthesises the default hazelnut set (391 train/good at 256 px, 40 test/good, 17 per defect
type) if DIR has none, then trains the DEFAULT classifier (MobileNetV2 alpha 1.0 at 224, the
offline ImageNet weights file, the trainer's default epochs / aug copies / fine-tuning) with
the originating report's protocol: 10 defective images in training (``defects_total=10``;
with ``--per-type`` also 10 per type), the rest of test/ held out. Prints head-epoch,
feature-caching, fine-tune-epoch and total times with the test metrics beside the majority
baseline, and writes benchmarks/results/train_time.json.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"
BAR = {"test_balanced_accuracy": 0.90, "test_auroc": 0.95}


def one_run(data, work, name, **split):
    from trainer.config import TrainConfig
    from trainer.train import train_classifier

    cfg = TrainConfig(data=str(data), mode="classifier", protocol="supervised", weights=str(WEIGHTS), seed=0,
                      project=str(work / "runs"), name=name, **split)
    t0 = time.time()
    run = train_classifier(cfg)
    wall = time.time() - t0
    m = json.loads((run / "metrics.json").read_text())
    t, test = m["timing"], m["test"]
    n_cached = (1 + cfg.aug_copies) * m["counts"]["train"]["n"] + m["counts"]["val"]["n"]
    ms_per_image = 1000 * t["feature_cache_s"] / n_cached
    result = {
        "split": split, "run": str(run), "device": m["device"], "cpu_count": os.cpu_count(),
        "config": {k: getattr(cfg, k) for k in ("alpha", "input_size", "epochs", "aug_copies", "fine_tune_epochs",
                                                 "fine_tune_blocks", "fine_tune_learning_rate", "batch_size",
                                                 "threshold_policy")},
        "counts": m["counts"],
        "timing_s": {
            "feature_cache": t["feature_cache_s"],
            "feature_cache_ms_per_image": round(ms_per_image, 1),
            "augment": t.get("augment_s"),
            "head_epoch_on_cached_features": t.get("head_epoch_s"),
            # What one frozen-backbone epoch would cost without the cache: a forward pass per image.
            "frozen_backbone_epoch_uncached_estimate": round(ms_per_image * m["counts"]["train"]["n"] / 1000, 2),
            "head_total": t.get("head_s"),
            "head_epochs": len(m["histories"].get("head", {}).get("loss", [])),
            "fine_tune_epoch": t.get("fine_tune_epoch_s"),
            "fine_tune_total": t.get("fine_tune_s"),
            "fine_tune_epochs": len(m["histories"].get("fine_tune", {}).get("loss", [])),
            "total_to_saved_model": t["total_to_saved_model_s"],
            "wall_including_plots": round(wall, 2),
        },
        "threshold": m["threshold"], "threshold_info": m["threshold_info"],
        "test": {k: test[k] for k in ("n", "n_defective", "auroc", "auroc_ci95", "balanced_accuracy",
                                      "balanced_accuracy_ci95", "accuracy", "majority_baseline", "majority_class",
                                      "recall", "precision", "predicted_defective_fraction", "confusion_matrix")},
        "per_type_test": m["per_type_test"], "type_accuracy_test": m["type_accuracy_test"],
        "warnings": m["warnings"],
    }
    result["bar"] = {
        "test_balanced_accuracy>=0.90": test["balanced_accuracy"] >= BAR["test_balanced_accuracy"],
        "test_auroc>=0.95": test["auroc"] >= BAR["test_auroc"],
        "not_all_defective": test["predicted_defective_fraction"] < 1.0,
    }
    return result


def show(r):
    ts, te = r["timing_s"], r["test"]
    click.echo(f"\n== {r['split']} on {r['device']}")
    click.echo(f"  feature cache  {ts['feature_cache']:.1f}s ({ts['feature_cache_ms_per_image']} ms/image); "
               f"an uncached frozen-backbone epoch would take ~{ts['frozen_backbone_epoch_uncached_estimate']:.1f}s")
    click.echo(f"  head epoch     {ts['head_epoch_on_cached_features']:.2f}s x {ts['head_epochs']} (cached features)")
    if ts["fine_tune_epoch"] is not None:
        click.echo(f"  fine-tune epoch {ts['fine_tune_epoch']:.2f}s x {ts['fine_tune_epochs']} (cached activations)")
    click.echo(f"  total to saved model {ts['total_to_saved_model']:.1f}s")
    click.echo(f"  test: AUROC {te['auroc']:.3f} {te['auroc_ci95']} | balanced acc {te['balanced_accuracy']:.3f} "
               f"{te['balanced_accuracy_ci95']} | majority baseline {te['majority_baseline']:.3f} | "
               f"predicted defective {te['predicted_defective_fraction']:.3f}")
    click.echo(f"  bar: {r['bar']}")


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=None, help="MVTec-layout set (default: synthesise hazelnut).")
@click.option("--per-type", is_flag=True, help="Also train with 10 defective images per type.")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results" / "train_time.json")
def main(data, per_type, out):
    from edge.atomic import atomic_write_json

    work = Path(tempfile.mkdtemp(prefix="train_bench_"))
    synth_s = None
    if data is None:
        from trainer.data.synth import generate

        data = work / "hazelnut"
        t = time.time()
        generate(data, kind="hazelnut", seed=0)
        synth_s = time.time() - t
    runs = [one_run(data, work, "total10", defects_total=10)]
    show(runs[-1])
    if per_type:
        runs.append(one_run(data, work, "pertype10", defects_per_type=10))
        show(runs[-1])
    atomic_write_json(out, {"benchmark": "train_time", "data": str(data), "synth_s": synth_s,
                            "weights": WEIGHTS.name, "bar": BAR, "runs": runs})
    click.echo(f"\nwrote {out}")


if __name__ == "__main__":
    main()
