"""``edgeinspect train --mode combined``: many good images and a few labelled defects, in one graph.

Steps: split (supervised) -> features of every good and defective train/val image -> the good-only
heads (bank, Gaussian) fitted on the good ones, with out-of-fold good evidences -> probe + stack
cross-validated over good and defective images (``stack``) -> threshold from those out-of-sample
scores and the false-reject target -> defect-type prototypes (``prototypes``) -> one Keras graph
(``combined_model``) -> the same honest test report and run folder as anomaly mode.
"""
from __future__ import annotations

import time

import numpy as np

from edge.errors import DataError
from trainer.data.run_contract import GOOD

DECISION_GAIN = 2.0  # score = sigmoid(gain * (stack - threshold) / (threshold - good median))


def _split(cfg, echo):
    from trainer.data.run_contract import split_items
    from trainer.data.split import split_for_config

    manifest, root, _ = split_for_config(cfg, echo)
    return manifest, root, {s: split_items(manifest, s, root) for s in ("train", "val", "test")}


def fit_sets(files):
    """(good, defective) images the combined model learns from: train and val together, because every
    threshold and recall figure comes from cross-validation, not from a held-back handful."""
    fit = [f for s in ("train", "val") for f in files[s]]
    good = [f for f in fit if f["label"] == 0]
    bad = [f for f in fit if f["label"] == 1]
    if len(good) < 5:
        raise DataError(f"the train and val splits have {len(good)} good image(s); the combined mode needs at "
                        "least 5 (add images to train/good)")
    if len(bad) < 2:
        raise DataError(f"the train and val splits have {len(bad)} defective image(s); the combined mode needs at "
                        "least 2 (use --mode anomaly for good images only, or move defects into train)")
    return good, bad


def normalised(raw, block):
    return (np.asarray(raw, np.float64) - block["median"]) / block["spread"]


def fit_combined_params(fg, fd, probe_g, probe_d, types, settings, seed, echo, probe_painted=None):
    """Everything ``combined_model.build_combined`` bakes in, from features of good (``fg``) and defective
    (``fd``) images ([patch, global stats]) and their pooled probe activations.

    Returns (params, cal, threshold info, stack, out-of-sample scores, labels, coreset s, types info).
    """
    from trainer.anomaly.calibrate import scorer_params
    from trainer.anomaly.fit import fit_heads, head_scores, out_of_fold
    from trainer.anomaly.stack import choose_threshold, fit_stack
    from trainer.metrics import auroc

    oof_p, oof_g = out_of_fold(fg, settings, seed, echo)
    bank, gauss, coreset_s = fit_heads(fg, settings, seed, echo)
    params, cal = scorer_params(bank, oof_p, settings["max_false_reject"], settings["span"], settings["gain"],
                                oof_g, gauss, "patch+global")
    raw_dp, raw_dg = head_scores(fd, bank, gauss)
    ev_good = np.c_[normalised(oof_p, cal["patch"]), normalised(oof_g, cal["global"])]
    ev_def = np.c_[normalised(raw_dp, cal["patch"]), normalised(raw_dg, cal["global"])]
    stack, oof, y = fit_stack(ev_good, ev_def, probe_g, probe_d, seed=seed, probe_painted=probe_painted)
    thr, thr_info = choose_threshold(oof, y, settings["max_false_reject"])
    med_good = float(np.median(oof[y == 0]))
    gain = DECISION_GAIN / max(thr - med_good, 0.1)
    ci_r, ci_f = thr_info["expected_recall_ci95"], thr_info["expected_false_reject_ci95"]
    echo(f"threshold ({thr_info['chosen']}) from out-of-sample scores of {int((y == 0).sum())} good and {int(y.sum())} defective "
         f"images: expected recall {thr_info['expected_recall']:.3f} [95% CI {ci_r[0]:.3f}-{ci_r[1]:.3f}], "
         f"false-reject rate {thr_info['expected_false_reject']:.3f} [{ci_f[0]:.3f}-{ci_f[1]:.3f}] "
         f"(target {settings['max_false_reject']:.3g})")
    echo(f"stack weights: patch {stack['stack']['w'][0]:.2f}, global {stack['stack']['w'][1]:.2f}, "
         f"probe {stack['stack']['w'][2]:.2f}; out-of-fold AUROC {auroc(y, oof):.3f}")
    unit = params["unit"]
    pat, glo = cal["patch"], cal["global"]
    params.update(patch_u=(unit / pat["spread"], -pat["median"] / pat["spread"]),
                  global_u=(1.0 / glo["spread"], -glo["median"] / glo["spread"]),
                  probe=stack["probe"], stack=stack["stack"], decision=(thr, gain))
    types_info = _fit_types(fd, probe_d, types, params["bank"], unit, stack["probe"], params, echo)
    return params, cal, thr_info, stack, oof, y, coreset_s, types_info


def train_combined(cfg, echo=None, mode_choice=None):
    from edge.atomic import atomic_write_json, new_run_dir
    from edge.preprocess import as_hw
    from trainer.anomaly.combined_model import build_combined
    from trainer.anomaly.fit import _echo_fn, evaluate, features_of, write_plots
    from trainer.anomaly.model import build_feature_extractor
    from trainer.anomaly.settings import anomaly_settings
    from trainer.metrics import auroc, choose_threshold as policy_threshold

    echo = _echo_fn(echo)
    settings = anomaly_settings(cfg.anomaly)
    if not settings["global_tap"]:
        raise DataError("the combined mode needs anomaly.global_tap (the Gaussian evidence); leave it at its default")
    manifest, root, files = _split(cfg, echo)
    good, bad = fit_sets(files)
    size = as_hw(cfg.input_size)
    t_start = time.time()
    echo(f"combined: MobileNetV2 alpha {cfg.alpha} at {size[0]}x{size[1]}, taps {settings['taps']}, global "
         f"{settings['global_tap']}, probe {settings['probe_tap']}; {len(good)} good + {len(bad)} defective images "
         f"(train and val, cross-validated)")
    from trainer.data.roi import load_roi, roi_info

    roi = load_roi(cfg.roi, size) if cfg.roi else None
    extractor = build_feature_extractor(cfg.alpha, size, cfg.weights, settings["taps"], settings["pool"],
                                        settings["tap_norm"], global_tap=settings["global_tap"],
                                        moments=settings["global_moments"], roi=roi, probe_tap=settings["probe_tap"])
    fg = features_of(extractor, good, size, settings["batch_size"], echo, "good")
    fd = features_of(extractor, bad, size, settings["batch_size"], echo, "defective")
    probe_g, probe_d = fg.pop(), fd.pop()
    painted = _painted_probe(extractor, good, size, settings, cfg.seed, echo)
    fitted = fit_combined_params(fg, fd, probe_g, probe_d, [f["type"] for f in bad], settings, cfg.seed, echo,
                                 probe_painted=painted)
    params, cal, thr_info, stack, oof, y, coreset_s, types_info = fitted
    bank = params["bank"]
    model = build_combined(extractor, params)
    fit_seconds = time.time() - t_start
    del fg, fd

    run_dir = new_run_dir(cfg.project, cfg.name)
    cal.update(combined=thr_info, folds=settings["folds"])
    metrics = evaluate(model, files, size, cfg, cal, echo, policy_threshold, auroc, root, val_fitted=True)
    metrics.update(fit_seconds=fit_seconds, coreset_seconds=coreset_s, combined=thr_info, threshold_policy="combined",
                   stack={"weights": [float(v) for v in stack["stack"]["w"]], "bias": float(stack["stack"]["b"]),
                          "out_of_fold_auroc": auroc(y, oof)})
    if types_info:
        metrics["types"] = {**types_info, **_type_report(metrics, files["test"], params["types"]["labels"], echo)}
    from trainer.layers import save_model

    save_model(model, run_dir / "model.keras")
    write_plots(run_dir, metrics)
    from trainer.data.run_contract import write_run_files
    from trainer.golden import golden_for

    labels = params["types"]["labels"] if params.get("types") else [GOOD, "defective"]
    policy = (f"combined: min(out-of-fold balanced accuracy, false-reject target {settings['max_false_reject']:.3g}) "
              f"over {len(good)} good + {len(bad)} defective images ({thr_info['chosen']})")
    write_run_files(run_dir, cfg=cfg, manifest=manifest, task="anomaly", labels=labels, input_size=size,
                    threshold=0.5, threshold_policy=policy, metrics=metrics,
                    golden=golden_for(files, {s: metrics.get(f"{s}_scores") or [] for s in ("val", "test")}),
                    extra={"mode": "combined", **({"mode_choice": mode_choice} if mode_choice else {}),
                           "anomaly": {"method": "patchcore-coreset+gaussian+probe (stacked)",
                                       "bank_size": int(bank.shape[0]), "taps": settings["taps"],
                                       "global_tap": settings["global_tap"], "probe_tap": settings["probe_tap"],
                                       "max_false_reject": settings["max_false_reject"],
                                       "fit_images": len(good), "fit_defects": len(bad),
                                       "fit_seconds": round(fit_seconds, 2)},
                           **({"roi": roi_info(cfg.roi, roi)} if roi is not None else {})})
    atomic_write_json(run_dir / "calibration.json", cal)
    echo(f"run folder: {run_dir}")
    return run_dir


def _painted_probe(extractor, good, size, settings, seed, echo):
    """Probe activations of ``anomaly.paint_defects`` synthetic defects painted on good images, or None.

    Off by default: on ../shared/realdata they made the probe worse (README, "A handful of defects").
    """
    n = settings["paint_defects"]
    if not n:
        return None
    from trainer.anomaly.model import extract_features
    from trainer.data.dataset import load_batch
    from trainer.defect_paint import paint_many

    donors = load_batch([f["abspath"] for f in good[:64]], size)
    x = paint_many(donors, n, seed=seed)
    echo(f"painted defects: {n} synthetic defects on {len(donors)} good images (probe training only)")
    return extract_features(extractor, x, settings["batch_size"])[-1]


def _fit_types(fd, probe_d, types, bank, unit, probe, params, echo):
    """Prototypes into ``params["types"]`` when the defects have two or more types; returns the record."""
    from trainer.anomaly import prototypes as P
    from trainer.anomaly.reference import nearest_distance

    types = list(types)
    if len(set(types)) < 2:
        echo(f"types: one defect type ({types[0]}): no type head")
        return None
    d = nearest_distance(fd[0], bank)
    typical = float(np.median(d))
    beta = P.BETA * unit / max(typical, 1e-4)
    near = np.clip(d / unit, 0.0, 6.0)
    z = (np.asarray(probe_d, np.float64) - probe["mu"]) / probe["sd"]
    desc = P.descriptors(P.attention_pool(fd[0], near, beta), z)
    names, protos, floor, info = P.fit_prototypes(desc, types)
    params["types"] = {**P.type_logits_params(names, protos, floor, fd[0].shape[-1]), "beta": beta}
    echo(f"types: prototypes of {', '.join(f'{t} ({n})' for t, n in info['examples'].items())}; "
         f"unknown below cosine {floor:.3f}")
    return info


def _type_report(metrics, test, labels, echo):
    """Type accuracy on caught test defects (verdict defective), overall and per type, from the test
    report's scores and type outputs (``fit.evaluate``)."""
    from trainer.metrics import type_accuracy_on_caught

    if not test:
        return {}
    preds = [labels[j] for j in metrics["test_type_index"]]
    rep = type_accuracy_on_caught([f["type"] for f in test], preds, np.asarray(metrics["test_scores"]) >= 0.5)
    if rep["n"]:
        echo(f"  defect type on caught test defects: {rep['accuracy']:.3f} (n={rep['n']}, chance "
             f"{1 / max(len(labels) - 2, 1):.3f}); " + ", ".join(f"{t} {v['accuracy']:.2f} (n={v['n']})"
                                                                for t, v in rep["per_type"].items()))
    return {"test": rep}
