"""``edgeinspect train --mode anomaly``: fit on good images only, calibrate on held-out good ones.

Steps: good-only split -> patch features of train/good -> greedy coreset
memory bank -> threshold from val/good -> one Keras graph (pixels -> score, map)
-> honest test report -> the same run folder as the classifier.
"""
from __future__ import annotations

import time
import warnings as warnings_module
from pathlib import Path

import numpy as np

from edge.errors import DataError
from trainer.data.run_contract import GOOD

LABELS = [GOOD, "defective"]


def _echo_fn(echo):
    if echo is not None:
        return echo
    import click

    return click.echo


def resolve_good_only_split(cfg, echo):
    """(manifest, root): the run's manifest, or a fresh ``good-only`` split of ``cfg.data``."""
    from trainer.data.split import split_for_config

    manifest, root, _ = split_for_config(cfg, echo, protocol="good-only")
    return manifest, root


def fit_files_of(files, echo):
    """The images the bank is fitted on: good images of the train split, nothing else."""
    fit = [f for f in files["train"] if f["label"] == 0]
    dropped = len(files["train"]) - len(fit)
    if dropped:
        echo(f"note: {dropped} defective image(s) in the train split are NOT used for fitting (anomaly mode "
             "learns from good parts only); use a good-only split to evaluate them")
    if not fit:
        raise DataError("the train split has no good images; anomaly mode learns from train/good")
    if not [f for f in files["val"] if f["label"] == 0]:
        raise DataError("the val split has no good images; the threshold is calibrated on held-out good images "
                        "(raise val_fraction or add images to train/good)")
    return fit


def _progress(echo, what, t0):
    def report(done, total, *extra):
        tail = f", coverage radius {extra[0]:.3f}" if extra else ""
        echo(f"  {what}: {done}/{total} ({time.time() - t0:.1f}s{tail})")
    return report


def features_of(extractor, files, size, batch_size, echo, name):
    """Load images in chunks (never all decoded at once) and return (N, h, w, D) features."""
    from trainer.anomaly.model import extract_features
    from trainer.data.dataset import load_batch

    t0 = time.time()
    chunk = max(batch_size, 64)
    out = []
    for i in range(0, len(files), chunk):
        part = files[i:i + chunk]
        x = load_batch([f["abspath"] for f in part], size)
        out.append(extract_features(extractor, x, batch_size))
        echo(f"  features {name}: {min(i + chunk, len(files))}/{len(files)} images ({time.time() - t0:.1f}s)")
    return np.concatenate(out, axis=0)


def predict_files(model, files, size, batch_size=16):
    """(scores (N,), maps (N, h, w), images (N, H, W, 3)) from the Keras scorer, as deployed."""
    from trainer.data.dataset import load_batch

    scores, maps = [], []
    for i in range(0, len(files), 64):
        x = load_batch([f["abspath"] for f in files[i:i + 64]], size)
        for j in range(0, len(x), batch_size):
            out = model(x[j:j + batch_size].astype(np.float32), training=False)
            scores.append(np.asarray(out["score"])[:, 0])
            maps.append(np.asarray(out["map"]))
    if not scores:
        return np.zeros(0), np.zeros((0,) + tuple(model.output["map"].shape[1:]))
    return np.concatenate(scores), np.concatenate(maps)


def fit_bank(features, settings, seed, echo):
    """Greedy-coreset memory bank (K, D) from (N, h, w, D) good patch features."""
    from trainer.anomaly.coreset import greedy_coreset

    patches = features.reshape(-1, features.shape[-1])
    k = min(settings["bank_size"], len(patches))
    t0 = time.time()
    echo(f"coreset: choosing {k} of {len(patches)} good patches (greedy k-center, projection {settings['proj_dim']})")
    idx = greedy_coreset(patches, k, settings["proj_dim"], seed, progress=_progress(echo, "coreset", t0))
    return patches[idx].astype(np.float32), time.time() - t0


def train_anomaly(cfg, echo=None) -> Path:
    from edge.atomic import atomic_write_json, new_run_dir
    from edge.preprocess import as_hw
    from trainer.anomaly.calibrate import good_only_threshold
    from trainer.anomaly.model import build_feature_extractor, build_scorer
    from trainer.anomaly.reference import raw_scores
    from trainer.anomaly.settings import anomaly_settings
    from trainer.metrics import auroc, choose_threshold
    from trainer.data.run_contract import split_items

    echo = _echo_fn(echo)
    settings = anomaly_settings(cfg.anomaly)
    manifest, root = resolve_good_only_split(cfg, echo)
    files = {s: split_items(manifest, s, root) for s in ("train", "val", "test")}
    fit_files = fit_files_of(files, echo)
    val_good = [f for f in files["val"] if f["label"] == 0]
    size = as_hw(cfg.input_size)
    t_start = time.time()

    echo(f"anomaly: MobileNetV2 alpha {cfg.alpha} at {size[0]}x{size[1]}, taps {settings['taps']}, "
         f"fitting on {len(fit_files)} good images")
    extractor = build_feature_extractor(cfg.alpha, size, cfg.weights, settings["taps"], settings["pool"],
                                        settings["tap_norm"])
    feats = features_of(extractor, fit_files, size, settings["batch_size"], echo, "train/good")
    grid, dim = feats.shape[1:3], int(feats.shape[-1])
    bank, coreset_s = fit_bank(feats, settings, cfg.seed, echo)
    n_patches = int(np.prod(feats.shape[:3]))
    del feats

    f_val = features_of(extractor, val_good, size, settings["batch_size"], echo, "val/good")
    raw_val = raw_scores(f_val, bank)
    t, s, cal = good_only_threshold(raw_val, settings["quantile"], settings["margin"], settings["span"])
    echo(f"threshold from {len(val_good)} held-out good images: raw {t:.4f} = median {cal['median']:.4f} + "
         f"{settings['margin']} x (q{settings['quantile']} {cal['quantile_value']:.4f} - median); "
         f"normalised so the threshold is 0.5")
    model = build_scorer(extractor, bank, t, s)
    fit_seconds = time.time() - t_start
    echo(f"fitted in {fit_seconds:.1f}s: bank {bank.shape[0]} x {dim} from {n_patches} patches, map {grid[0]}x{grid[1]}")

    run_dir = new_run_dir(cfg.project, cfg.name)
    metrics = evaluate(model, files, size, cfg, cal, echo, choose_threshold, auroc)
    metrics.update(fit_seconds=fit_seconds, coreset_seconds=coreset_s,
                   fit_images=[f["path"] for f in fit_files])
    from trainer.layers import save_model

    save_model(model, run_dir / "model.keras")
    write_plots(run_dir, metrics)
    if settings["save_maps"]:
        write_maps(model, files["test"], size, run_dir / "maps", settings["max_maps"], echo)
    policy = (f"good-only: median + {settings['margin']} x (q{settings['quantile']} - median) of "
              f"{len(val_good)} held-out good images")
    from trainer.data.run_contract import write_run_files

    write_run_files(run_dir, cfg=cfg, manifest=manifest, task="anomaly", labels=LABELS, input_size=size,
                    threshold=0.5, threshold_policy=policy, metrics=metrics,
                    extra={"anomaly": {"method": "patchcore-coreset", "bank_size": int(bank.shape[0]),
                                       "feature_dim": dim, "map_size": [int(grid[0]), int(grid[1])],
                                       "taps": settings["taps"], "pool": settings["pool"],
                                       "tap_norm": settings["tap_norm"],
                                       "raw_threshold": t, "raw_scale": s, "fit_images": len(fit_files),
                                       "fit_patches": n_patches, "fit_seconds": round(fit_seconds, 2)}})
    atomic_write_json(run_dir / "calibration.json", cal)
    echo(f"run folder: {run_dir}")
    return run_dir


def evaluate(model, files, size, cfg, cal, echo, choose_threshold, auroc):
    from trainer.evaluate import NO_TEST, per_type_line, shout
    from trainer.metrics import binary_report, format_report, per_type_recall

    out = {"threshold": 0.5, "calibration": cal, "threshold_policy": "good-only"}
    warnings = [f"threshold: {cal['warning']}"] if "warning" in cal else []
    for split in ("val", "test"):
        if not files[split]:
            out[split] = None
            continue
        scores, _ = predict_files(model, files[split], size)
        y = np.array([f["label"] for f in files[split]], dtype=int)
        with warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore", UserWarning)  # sklearn: single-label confusion matrix
            rep = binary_report(y, scores, 0.5, ci=(split == "test"), n_boot=500, seed=cfg.seed)
        out[split] = rep
        out[f"{split}_scores"] = [float(v) for v in scores]
        out[f"{split}_labels"] = y.tolist()
        out[f"{split}_types"] = [f["type"] for f in files[split]]
        if split == "val" and len(np.unique(y)) == 1:
            # A good-only val split: its only question is the false-alarm rate (the single-class
            # warning binary_report gives would be about the data, not the model).
            echo(f"val: {len(y)} held-out good images set the threshold; {int((scores >= 0.5).sum())} "
                 f"of them score >= 0.5 (false-alarm rate {float(np.mean(scores >= 0.5)):.3f})")
            continue
        echo(format_report(rep, f"{split} ({'held out' if split == 'test' else 'val'}):"))
        if split == "val" and len(np.unique(y)) == 2:
            # Defects in val are for information only: the deployed threshold stays the good-only one.
            thr, info = choose_threshold(y, scores, cfg.threshold_policy)
            out["val_policy_threshold"] = {"policy": cfg.threshold_policy, "threshold": float(thr), **info,
                                           "auroc": auroc(y, scores)}
            echo(f"  val has defects: AUROC {auroc(y, scores):.3f}; {cfg.threshold_policy} would pick {thr:.3f} "
                 f"(deployed: 0.5 from good images)")
        if split == "test":
            per_type = per_type_recall([f["type"] for f in files["test"]], scores, 0.5)
            out["per_type_test"] = per_type
            echo(per_type_line(per_type))
        warnings += [f"{split}: {w}" for w in rep["warnings"]]
    if out.get("test") is None:
        warnings.append(NO_TEST)
    shout(warnings, echo)
    out["warnings"] = warnings
    return out


def write_plots(run_dir, metrics):
    from trainer.anomaly.plots import plot_score_histogram
    from trainer.plots import plot_confusion

    plot_confusion({k: metrics.get(k) for k in ("val", "test")}, run_dir / "confusion.png",
                   title="anomaly: defective vs good at threshold 0.5")
    split = "test" if metrics.get("test") else "val"
    plot_score_histogram(metrics[f"{split}_scores"], metrics[f"{split}_labels"], run_dir / "scores.png",
                         title=f"{split} image scores (threshold 0.5 from good images only)")


def write_maps(model, test_files, size, out_dir, max_maps, echo):
    """Overlays for a sample spread over every test type (good included), named type_stem.png."""
    from edge.overlay import save_overlay
    from trainer.data.dataset import load_batch

    by_type = {}
    for f in test_files:
        by_type.setdefault(f["type"], []).append(f)
    picked, i = [], 0
    while len(picked) < max_maps and any(i < len(v) for v in by_type.values()):
        picked += [v[i] for v in by_type.values() if i < len(v)][: max_maps - len(picked)]
        i += 1
    for f in picked:
        x = load_batch([f["abspath"]], size)
        out = model(x.astype(np.float32), training=False)
        score = float(np.asarray(out["score"])[0, 0])
        save_overlay(x[0], np.asarray(out["map"])[0], out_dir / f"{f['type']}_{Path(f['path']).stem}_{score:.2f}.png")
    echo(f"maps: {len(picked)} overlays in {out_dir}")
