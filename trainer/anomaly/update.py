"""``train --update RUN --add-good DIR`` for an anomaly run: absorb new good parts without re-fitting.

No old image is read again: the parent's bank stands in for the old patches (``update_cache.npz``,
trainer/anomaly/cache.py), so the new bank is a greedy coreset over the old bank plus the new
images' patches, at the parent's bank size. The Gaussian is refitted on the cached pooled statistics
plus the new ones. The threshold is recalibrated at the parent's false-reject target on the cached
out-of-fold good scores plus the new images' scores against the *parent's* heads: those images were
never fitted by the parent, so their scores are out-of-sample exactly like the out-of-fold ones.
Added defective images are not learned (anomaly mode learns from good parts only); they are kept in
the lineage, where the export's regression comparison checks them.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np


def update_anomaly(parent_dir, parent_info, added, echo, seed=None):
    """The new run folder (numbered beside ``parent_dir``) of ``parent_dir`` updated with ``added``."""
    from edge.atomic import atomic_write_json, new_run_dir
    from edge.errors import DataError
    from edge.preprocess import as_hw
    from trainer.anomaly.cache import load_update_cache, save_update_cache
    from trainer.anomaly.calibrate import scorer_params
    from trainer.anomaly.fit import LABELS, evaluate, features_of, fit_bank, head_scores, write_plots
    from trainer.anomaly.gaussian import fit_gaussian
    from trainer.anomaly.model import build_scorer
    from trainer.anomaly.model import scorer_params as read_scorer
    from trainer.anomaly.reference import global_stats
    from trainer.anomaly.settings import anomaly_settings
    from trainer.config import load_config
    from trainer.data.run_contract import make_lineage, resolve_root, run_manifest, split_items, write_run_files
    from trainer.golden import golden_for
    from trainer.layers import load_model, save_model
    from trainer.metrics import auroc, choose_threshold

    t0 = time.time()
    parent_dir = Path(parent_dir)
    cfg = load_config(parent_dir / "config.json")
    seed = cfg.seed if seed is None else int(seed)
    settings = anomaly_settings(cfg.anomaly)
    cache = load_update_cache(parent_dir)
    good = [a for a in added if a["label"] == 0]
    if not good:
        raise DataError("anomaly runs learn from good parts only: pass --add-good DIR with at least one image "
                        "(--add-defects alone only adds checks to the export's comparison)")
    known = set(cache["fit_sha256"])
    repeat = [a["file"] for a in good if a["sha256"] in known]
    if repeat:
        echo(f"note: {len(repeat)} added good image(s) are already in the parent's fit (same sha256), "
             f"e.g. {repeat[0]}; they are absorbed again")
    size = as_hw(parent_info["input_size"])
    model = load_model(parent_dir / "model.keras")
    extractor, _ = read_scorer(model)
    echo(f"update {parent_dir.name}: {len(good)} added good image(s) into a bank of {len(cache['bank'])}")
    feats = features_of(extractor, good, size, settings["batch_size"], echo, "added good")
    from trainer.anomaly.model import level_scale

    scale = level_scale(extractor)
    if scale is not None:  # a levelled graph pools scale * x; the heads live in the unlevelled units
        feats[1] = feats[1] / scale
    gauss_old = (fit_gaussian(cache["fit_global"], groups=len(feats) - 1)
                 if cache["fit_global"] is not None and len(feats) > 1 else None)
    new_p, new_g = head_scores(feats, cache["bank"], gauss_old)
    d = cache["bank"].shape[1]
    pool = np.concatenate([cache["bank"], feats[0].reshape(-1, d)], axis=0)
    bank, coreset_s = fit_bank(pool, dict(settings, bank_size=len(cache["bank"])), seed, echo)
    g_new = global_stats(feats)
    fit_global = (np.concatenate([cache["fit_global"], g_new], axis=0)
                  if cache["fit_global"] is not None and g_new is not None else None)
    gauss = fit_gaussian(fit_global, groups=len(feats) - 1) if fit_global is not None else None
    good_p = np.concatenate([cache["oof_patch"], new_p])
    good_g = (np.concatenate([cache["oof_global"], new_g]) if cache["oof_global"] is not None and new_g is not None
              else None)
    params, cal = scorer_params(bank, good_p, settings["max_false_reject"], settings["span"], settings["gain"],
                                good_g, gauss, settings["evidence"])
    cal.update(updated_from=parent_dir.name, n_out_of_fold=int(len(cache["oof_patch"])), n_added=len(good))
    echo(f"threshold for a false-reject target of {settings['max_false_reject']:.3g} from {len(good_p)} good scores "
         f"({len(cache['oof_patch'])} out-of-fold + {len(good)} added, scored by the parent): expected false-reject "
         f"rate {cal['expected_false_reject']:.3f}")
    new_model = build_scorer(extractor, params)

    manifest = run_manifest(parent_dir)
    root = resolve_root(manifest, parent_dir / "manifest.json")
    files = {s: split_items(manifest, s, root) for s in ("train", "val", "test")}
    # val was fitted on (in-sample): only the held-out test split says something about the update
    metrics = evaluate(new_model, dict(files, val=[]), size, cfg, cal, echo, choose_threshold, auroc)
    fit_seconds = time.time() - t0
    metrics.update(fit_seconds=fit_seconds, coreset_seconds=coreset_s, updated_from=str(parent_dir),
                   added_good=[a["file"] for a in good])
    base = re.sub(r"\d+$", "", parent_dir.name) or parent_dir.name
    run_dir = new_run_dir(parent_dir.parent, base)
    save_model(new_model, run_dir / "model.keras")
    write_plots(run_dir, metrics)
    save_update_cache(run_dir, bank=bank, oof_patch=good_p, oof_global=good_g, fit_global=fit_global,
                      fit_sha256=cache["fit_sha256"] + [a["sha256"] for a in good])
    anomaly = dict(parent_info.get("anomaly") or {})
    anomaly.update(bank_size=int(bank.shape[0]), raw_threshold=params["t"], raw_scale=params["s"],
                   fit_images=int(anomaly.get("fit_images", len(cache["oof_patch"]))) + len(good),
                   fit_seconds=round(fit_seconds, 2))
    policy = (f"good-only: false-reject target {settings['max_false_reject']:.3g} on {len(good_p)} good scores "
              f"(out-of-fold of {parent_dir.name} + {len(good)} added), evidence {cal['evidence']}")
    write_run_files(run_dir, cfg=cfg, manifest=manifest, task="anomaly", labels=LABELS, input_size=size,
                    threshold=0.5, threshold_policy=policy, metrics=metrics,
                    extra={"anomaly": anomaly, **({"roi": parent_info["roi"]} if parent_info.get("roi") else {})},
                    golden=golden_for(files, {"test": metrics.get("test_scores") or []}),
                    lineage=make_lineage(parent_dir, parent_info, added))
    atomic_write_json(run_dir / "calibration.json", cal)
    echo(f"updated in {time.time() - t0:.1f}s; run folder: {run_dir}")
    return run_dir
