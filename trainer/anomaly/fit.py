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
    """The images the heads are fitted on: the good images of the train *and* val splits.

    Out-of-fold scores calibrate the threshold (``out_of_fold``), so no good image has to be held
    back for it: every one of them makes the bank and the Gaussian better (castings: 160 -> 200).
    """
    fit = [f for s in ("train", "val") for f in files[s] if f["label"] == 0]
    dropped = sum(1 for s in ("train", "val") for f in files[s] if f["label"] != 0)
    if dropped:
        echo(f"note: {dropped} defective image(s) in the train/val splits are NOT used for fitting (anomaly mode "
             "learns from good parts only); use a good-only split to evaluate them")
    if len(fit) < 2:
        raise DataError(f"the train and val splits have {len(fit)} good image(s); anomaly mode learns from "
                        "train/good and calibrates on out-of-fold scores of at least 2 (add images to train/good)")
    return fit


def _progress(echo, what, t0):
    def report(done, total, *extra):
        tail = f", coverage radius {extra[0]:.3f}" if extra else ""
        echo(f"  {what}: {done}/{total} ({time.time() - t0:.1f}s{tail})")
    return report


def features_of(extractor, files, size, batch_size, echo, name):
    """Load images in chunks (never all decoded at once) -> [patch (N, h, w, D)] (+ [mean, meansq] (N, C))."""
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
    return [np.concatenate(parts, axis=0) for parts in zip(*out)]


def predict_files(model, files, size, batch_size=16):
    """(scores (N,), maps (N, h, w), type indices (N,) or None) from the Keras scorer, as deployed; the
    indices (argmax of the "type" output) only for a combined model with a type head."""
    from trainer.data.dataset import load_batch

    typed = "type" in model.output
    scores, maps, types = [], [], []
    for i in range(0, len(files), 64):
        x = load_batch([f["abspath"] for f in files[i:i + 64]], size)
        for j in range(0, len(x), batch_size):
            out = model(x[j:j + batch_size].astype(np.float32), training=False)
            scores.append(np.asarray(out["score"])[:, 0])
            maps.append(np.asarray(out["map"]))
            if typed:
                types.append(np.asarray(out["type"]).argmax(1))
    if not scores:
        return (np.zeros(0), np.zeros((0,) + tuple(model.output["map"].shape[1:])),
                np.zeros(0, int) if typed else None)
    return np.concatenate(scores), np.concatenate(maps), (np.concatenate(types) if typed else None)


def fit_bank(patch_features, settings, seed, echo=None):
    """Greedy-coreset memory bank (K, D) from (N, h, w, D) good patch features."""
    from trainer.anomaly.coreset import greedy_coreset

    patches = patch_features.reshape(-1, patch_features.shape[-1])
    k = min(settings["bank_size"], len(patches))
    t0 = time.time()
    if echo:
        echo(f"coreset: choosing {k} of {len(patches)} good patches (greedy k-center, projection "
             f"{settings['proj_dim']})")
    idx = greedy_coreset(patches, k, settings["proj_dim"], seed,
                         progress=_progress(echo, "coreset", t0) if echo else None)
    return patches[idx].astype(np.float32), time.time() - t0


def fit_heads(feats, settings, seed, echo=None):
    """(bank, gauss or None, coreset seconds) fitted on good-image features."""
    from trainer.anomaly.gaussian import fit_gaussian
    from trainer.anomaly.reference import global_stats

    bank, secs = fit_bank(feats[0], settings, seed, echo)
    g = global_stats(feats)
    return bank, (fit_gaussian(g, groups=len(feats) - 1) if g is not None else None), secs


def head_scores(feats, bank, gauss):
    """Raw (patch, global or None) scores of images from their features."""
    from trainer.anomaly.gaussian import mahalanobis
    from trainer.anomaly.reference import global_stats, raw_scores

    g = global_stats(feats)
    return raw_scores(feats[0], bank), (mahalanobis(g, *gauss) if gauss is not None else None)


def out_of_fold(feats, settings, seed, echo):
    """Raw scores of every training image from heads fitted without its fold: unbiased good scores
    for the threshold (in-sample scores sit far below what unseen good parts get)."""
    n = len(feats[0])
    k = min(settings["folds"], n)
    if k < 2:
        raise DataError(f"{n} good training image(s): out-of-fold calibration needs at least 2")
    order = np.random.default_rng(seed).permutation(n)
    patch, glob = np.zeros(n), (np.zeros(n) if len(feats) > 1 else None)
    t0 = time.time()
    for i in range(k):
        held = np.sort(order[i::k])
        keep = np.setdiff1d(order, held)
        bank, gauss, _ = fit_heads([f[keep] for f in feats], settings, seed + 1 + i)
        p, g = head_scores([f[held] for f in feats], bank, gauss)
        patch[held] = p
        if glob is not None:
            glob[held] = g
        echo(f"  out-of-fold scores: fold {i + 1}/{k} ({time.time() - t0:.1f}s)")
    return patch, glob


def train_anomaly(cfg, echo=None, mode_choice=None) -> Path:
    from edge.atomic import atomic_write_json, new_run_dir
    from edge.preprocess import as_hw
    from trainer.anomaly.calibrate import scorer_params
    from trainer.anomaly.model import build_feature_extractor, build_scorer
    from trainer.anomaly.settings import anomaly_settings
    from trainer.metrics import auroc, choose_threshold
    from trainer.data.run_contract import split_items

    echo = _echo_fn(echo)
    settings = anomaly_settings(cfg.anomaly)
    manifest, root = resolve_good_only_split(cfg, echo)
    files = {s: split_items(manifest, s, root) for s in ("train", "val", "test")}
    fit_files = fit_files_of(files, echo)
    size = as_hw(cfg.input_size)
    t_start = time.time()
    gtap = settings["global_tap"] or None

    echo(f"anomaly: MobileNetV2 alpha {cfg.alpha} at {size[0]}x{size[1]}, taps {settings['taps']}"
         f"{', global ' + gtap if gtap else ''}, fitting on {len(fit_files)} good images")
    from trainer.data.roi import load_roi, roi_info

    roi = load_roi(cfg.roi, size) if cfg.roi else None
    extractor = build_feature_extractor(cfg.alpha, size, cfg.weights, settings["taps"], settings["pool"],
                                        settings["tap_norm"], global_tap=gtap, moments=settings["global_moments"],
                                        roi=roi)
    feats = features_of(extractor, fit_files, size, settings["batch_size"], echo, "train/good")
    grid, dim = feats[0].shape[1:3], int(feats[0].shape[-1])
    oof_p, oof_g = out_of_fold(feats, settings, cfg.seed, echo)
    bank, gauss, coreset_s = fit_heads(feats, settings, cfg.seed, echo)
    n_patches = int(np.prod(feats[0].shape[:3]))
    from trainer.anomaly.reference import global_stats

    fit_global = global_stats(feats)  # kept for train --update (trainer/anomaly/update.py), unlike the patches
    if gtap and settings["global_levels"] and settings["global_moments"] == 1:
        from trainer.anomaly.model import levels_for

        # The deployed graph pools scale * global_tap (model.levels_for): the same model in float (the
        # whitening absorbs the scale), a finer int8 step for the pooled vector.
        levels = levels_for(feats[1])
        extractor = build_feature_extractor(cfg.alpha, size, cfg.weights, settings["taps"], settings["pool"],
                                            settings["tap_norm"], global_tap=gtap, moments=1, roi=roi,
                                            global_levels=levels)
        echo(f"global evidence: {int((levels[0] < 1).sum())} of {len(levels[0])} pooled channels levelled down "
             f"for int8 (range {levels[1]:.3g} instead of {float(feats[1].max()):.3g})")
    del feats

    good_p, good_g = oof_p, oof_g
    params, cal = scorer_params(bank, good_p, settings["max_false_reject"], settings["span"], settings["gain"],
                                good_g, gauss, settings["evidence"])
    cal.update(folds=settings["folds"], n_out_of_fold=int(len(oof_p)))
    ci = cal["expected_false_reject_ci95"]
    echo(f"threshold for a false-reject target of {settings['max_false_reject']:.3g} from {len(good_p)} "
         f"out-of-fold good scores ({settings['folds']} folds): expected false-reject "
         f"rate {cal['expected_false_reject']:.3f} [95% CI {ci[0]:.3f}-{ci[1]:.3f}]; evidence {cal['evidence']}")
    model = build_scorer(extractor, params)
    fit_seconds = time.time() - t_start
    echo(f"fitted in {fit_seconds:.1f}s: bank {bank.shape[0]} x {dim} from {n_patches} patches, map {grid[0]}x{grid[1]}")

    run_dir = new_run_dir(cfg.project, cfg.name)
    metrics = evaluate(model, files, size, cfg, cal, echo, choose_threshold, auroc, root)
    metrics.update(fit_seconds=fit_seconds, coreset_seconds=coreset_s,
                   fit_images=[f["path"] for f in fit_files])
    from trainer.layers import save_model

    save_model(model, run_dir / "model.keras")
    write_plots(run_dir, metrics)
    if settings["save_maps"]:
        write_maps(model, files["test"], size, run_dir / "maps", settings["max_maps"], echo)
    policy = (f"good-only: false-reject target {settings['max_false_reject']:.3g} on {len(good_p)} "
              f"out-of-fold good scores ({settings['folds']} folds), evidence {cal['evidence']}")
    from trainer.anomaly.cache import save_update_cache
    from trainer.data.run_contract import write_run_files
    from trainer.golden import golden_for

    save_update_cache(run_dir, bank=bank, oof_patch=oof_p, oof_global=oof_g, fit_global=fit_global,
                      fit_sha256=[f["sha256"] for f in fit_files])
    write_run_files(run_dir, cfg=cfg, manifest=manifest, task="anomaly", labels=LABELS, input_size=size,
                    threshold=0.5, threshold_policy=policy, metrics=metrics,
                    golden=golden_for(files, {s: metrics.get(f"{s}_scores") or [] for s in ("val", "test")}),
                    extra={"mode": "anomaly", **({"mode_choice": mode_choice} if mode_choice else {}),
                           "anomaly": {"method": "patchcore-coreset+gaussian" if gauss is not None else
                                       "patchcore-coreset", "bank_size": int(bank.shape[0]),
                                       "feature_dim": dim, "map_size": [int(grid[0]), int(grid[1])],
                                       "taps": settings["taps"], "global_tap": gtap, "pool": settings["pool"],
                                       "tap_norm": settings["tap_norm"], "max_false_reject": settings["max_false_reject"],
                                       "raw_threshold": params["t"], "raw_scale": params["s"],
                                       "fit_images": len(fit_files),
                                       "fit_patches": n_patches, "fit_seconds": round(fit_seconds, 2)},
                           **({"roi": roi_info(cfg.roi, roi)} if roi is not None else {})})
    atomic_write_json(run_dir / "calibration.json", cal)
    echo(f"run folder: {run_dir}")
    return run_dir


def evaluate(model, files, size, cfg, cal, echo, choose_threshold, auroc, root=None, val_fitted=False):
    """``val_fitted``: every val image was learnt from (combined mode), so val is reported as in-sample."""
    from trainer.evaluate import NO_TEST, per_type_line, shout
    from trainer.metrics import binary_report, format_report, per_type_recall

    out = {"threshold": 0.5, "calibration": cal, "threshold_policy": "good-only"}
    warnings = []
    if "warning" in cal:  # a limit of the data, said once, not an alarm about the model
        echo(f"note: threshold: {cal['warning']}")
    for split in ("val", "test"):
        if not files[split]:
            out[split] = None
            continue
        scores, maps, type_index = predict_files(model, files[split], size)
        y = np.array([f["label"] for f in files[split]], dtype=int)
        with warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore", UserWarning)  # sklearn: single-label confusion matrix
            rep = binary_report(y, scores, 0.5, ci=(split == "test"), n_boot=500, seed=cfg.seed)
        out[split] = rep
        out[f"{split}_scores"] = [float(v) for v in scores]
        out[f"{split}_labels"] = y.tolist()
        out[f"{split}_types"] = [f["type"] for f in files[split]]
        if type_index is not None:
            out[f"{split}_type_index"] = type_index.tolist()
        if split == "val" and (val_fitted or len(np.unique(y)) == 1):
            # A good-only val split was fitted on (the threshold comes from out-of-fold scores), so its
            # in-sample false-alarm rate is only a sanity check (the single-class warning binary_report
            # gives would be about the data, not the model).
            echo(f"val: {len(y)} images ({int(y.sum())} defective) fitted on, in-sample: "
                 f"{int((scores[y == 0] >= 0.5).sum())} good and {int((scores[y == 1] >= 0.5).sum())} defective "
                 "score >= 0.5 (held-out numbers: test)")
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
            if root is not None:
                from trainer.pixel_metrics import format_pixel, pixel_report

                out["pixel_test"] = pixel_report(maps, files["test"], root, size)
                if out["pixel_test"]:
                    echo(format_pixel(out["pixel_test"]))
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
