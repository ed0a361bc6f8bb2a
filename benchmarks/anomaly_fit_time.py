"""Anomaly mode at full size: fit time, bank size, float and int8 image AUROC, int8 Spearman and size.

    python benchmarks/anomaly_fit_time.py [--data DIR] [--size 224] [--bank-size 2048]

Synthesises the default hazelnut set (391 train/good at 256 px, 40 test/good, 17 per defect
type) if DIR has none, fits on good images only with MobileNetV2 alpha 1.0 and the offline
ImageNet weights, converts the scorer to float32 and full-integer int8 TFLite (representative
set: 100 training good images; the int8 conv biases are then corrected against float32 on 32
of them, export/bias_correct.py) and writes benchmarks/results/anomaly_fit.json.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=None, help="MVTec-layout set (default: synthesise hazelnut).")
@click.option("--size", default=224, show_default=True)
@click.option("--bank-size", default=2048, show_default=True)
@click.option("--anomaly", "anomaly_json", default="{}", help='Extra cfg.anomaly settings as JSON, e.g. \'{"tap_norm": false}\'.')
@click.option("--rep-images", default=100, show_default=True, help="Training good images for int8 calibration.")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results" / "anomaly_fit.json")
def main(data, size, bank_size, anomaly_json, rep_images, out):
    from scipy.stats import spearmanr

    from edge.atomic import atomic_write_json
    from export.convert import convert_keras
    from export.parity import run_tflite
    from trainer.anomaly import train_anomaly
    from trainer.config import TrainConfig
    from trainer.data.dataset import load_batch
    from trainer.layers import load_model
    from trainer.metrics import auroc

    work = Path(tempfile.mkdtemp(prefix="anomaly_bench_"))
    if data is None:
        from trainer.data.synth import generate

        data = work / "hazelnut"
        t = time.time()
        generate(data, kind="hazelnut", seed=0)
        click.echo(f"synthesised {data} in {time.time() - t:.1f}s")
    cfg = TrainConfig(data=str(data), mode="anomaly", alpha=1.0, input_size=size, weights=str(WEIGHTS), seed=0,
                      anomaly={"bank_size": bank_size, **json.loads(anomaly_json)}, project=str(work / "runs"), name="anomaly")
    t0 = time.time()
    run = train_anomaly(cfg)
    wall = time.time() - t0
    info = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    files = manifest["files"]
    test = [f for f in files if f["split"] == "test"]
    train = [f for f in files if f["split"] == "train"]
    y = np.array([f["label"] for f in test])
    model = load_model(run / "model.keras")
    x_test = load_batch([data / f["path"] for f in test], size)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(train), size=min(rep_images, len(train)), replace=False)
    x_rep = load_batch([data / train[i]["path"] for i in sorted(pick)], size)
    float_scores = np.asarray(metrics["test_scores"])

    t = time.time()
    fp32, _ = convert_keras(model, "fp32")
    int8, _ = convert_keras(model, "int8", x_rep, fp32=fp32)
    convert_s = time.time() - t
    fs, fm = (run_tflite(fp32, x_test, task="anomaly")[k] for k in ("score", "map"))
    qs, qm = (run_tflite(int8, x_test, task="anomaly")[k] for k in ("score", "map"))
    t = time.time()
    run_tflite(int8, x_test[:20], threads=1, task="anomaly")
    int8_ms = (time.time() - t) / 20 * 1000
    types = np.array([f["type"] for f in test])
    res = {
        "data": str(data), "input_size": size, "alpha": 1.0, "cpu_count": os.cpu_count(),
        "fit_images": info["anomaly"]["fit_images"], "fit_patches": info["anomaly"]["fit_patches"],
        "fit_seconds": info["anomaly"]["fit_seconds"], "train_wall_seconds_incl_eval": round(wall, 1),
        "bank_size": info["anomaly"]["bank_size"], "feature_dim": info["anomaly"]["feature_dim"],
        "map_size": info["anomaly"]["map_size"],
        "test_n": int(len(y)), "test_defective": int(y.sum()),
        "auroc_keras_float": auroc(y, float_scores),
        "balanced_accuracy_keras_float": metrics["test"]["balanced_accuracy"],
        "majority_baseline": metrics["test"]["majority_baseline"],
        "per_type_test": metrics["per_type_test"],
        "auroc_tflite_fp32": auroc(y, fs),
        "fp32_vs_keras_max_abs_diff": float(np.abs(fs - float_scores).max()),
        "auroc_tflite_int8": auroc(y, qs),
        "spearman_int8_vs_float": float(spearmanr(float_scores, qs)[0]),
        "int8_balanced_accuracy_at_0.5": float(np.mean([np.mean(qs[y == 1] >= 0.5), np.mean(qs[y == 0] < 0.5)])),
        "int8_vs_float_decisions_agree": float(np.mean((qs >= 0.5) == (float_scores >= 0.5))),
        "int8_map_max_abs_diff": float(np.abs(qm - fm).max()),
        "int8_auroc_per_type": {t: auroc(y[(types == t) | (types == "good")], qs[(types == t) | (types == "good")])
                                for t in sorted(set(types) - {"good"})},
        "fp32_bytes": len(fp32), "int8_bytes": len(int8),
        "int8_ms_per_image_1thread_xnnpack": round(int8_ms, 1),
        "convert_seconds": round(convert_s, 1),
        "calibration": metrics["calibration"], "anomaly_settings": cfg.anomaly,
        "scores": {"float": float_scores.tolist(), "int8": qs.tolist(), "labels": y.tolist()},
    }
    atomic_write_json(out, res)
    click.echo("\nanomaly fit benchmark (one run)")
    for k in ("fit_images", "fit_patches", "fit_seconds", "bank_size", "feature_dim", "map_size", "auroc_keras_float",
              "balanced_accuracy_keras_float", "majority_baseline", "auroc_tflite_fp32", "auroc_tflite_int8",
              "spearman_int8_vs_float", "int8_vs_float_decisions_agree", "int8_bytes",
              "int8_ms_per_image_1thread_xnnpack"):
        v = res[k]
        click.echo(f"  {k:36s} {v:.4f}" if isinstance(v, float) else f"  {k:36s} {v}")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
