"""Classifier training that works with a handful of defective images.

Steps (each prints progress):

1. split: ``cfg.manifest`` or a fresh seeded split of ``cfg.data`` (``cfg.protocol``);
2. model: :func:`trainer.model.build_classifier` inside the device strategy's scope;
3. cache (CPU): run the frozen bottom of the network once over the train images
   plus ``cfg.aug_copies`` augmented copies of each, and over val. The bottom is
   everything below the first fine-tuned block, so both phases reuse it;
4. phase 1: the heads on pooled features (fast: many epochs cost seconds);
5. phase 2 (``cfg.fine_tune_epochs`` > 0): the top ``cfg.fine_tune_blocks`` blocks +
   heads on the cached activations, BatchNorm frozen, at ``cfg.fine_tune_learning_rate``;
6. threshold on val for ``cfg.threshold_policy`` (inside the val score gap, logit margin), folded into the defect
   head so the saved model decides at 0.5 (run.json threshold 0.5, ``raw_threshold`` kept); honest reports on val and test
   from the full saved model; warnings if the model says one class or val has no defect.

Few defects: class weights (as sample weights: Keras ignores ``class_weight`` for
multi-output models) balance good vs defective and the defect types, and early
stopping on val restores the best epoch. On a GPU/TPU, phase 1 and 2 train on
images with on-the-fly augmentation instead of cached activations.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge.progress import as_progress
from trainer.augment import build_augmenter
from trainer.evaluate import evaluate_classifier
from trainer.labels import check_split, class_weights, head_labels
from trainer.layers import save_model
from trainer.phases import float32_twin, train_cached, train_images
from trainer.threshold import DECISION, decide_threshold, logit


def resolve_manifest(cfg, echo):
    from trainer.data.split import split_for_config

    return split_for_config(cfg, echo)


def load_split(files, root, size, echo, name):
    from trainer.data.dataset import load_batch

    t = time.time()
    x = load_batch([Path(root) / f["path"] for f in files], size)
    echo(f"  loaded {len(files)} {name} images in {time.time() - t:.1f}s")
    return x


def train_classifier(cfg, progress=True) -> Path:
    """Train per ``cfg`` (a :class:`trainer.config.TrainConfig`); returns the run folder.

    ``progress``: where the steps are reported (edge.progress: True, a callable taking a line, or False).
    """
    from trainer.tfutil import import_keras

    echo = as_progress(progress)
    t_start = time.time()
    timing = {}
    manifest, root, manifest_src = resolve_manifest(cfg, echo)
    from trainer.data.run_contract import split_items

    files = {s: split_items(manifest, s, root) for s in ("train", "val", "test")}
    check_split(files, manifest_src)
    labels = head_labels(files["train"], manifest["classes"])
    index = {c: i for i, c in enumerate(labels)}
    for s in ("train", "val", "test"):
        n_def = sum(f["label"] for f in files[s])
        echo(f"  {s}: {len(files[s])} images ({len(files[s]) - n_def} good, {n_def} defective)")
    echo(f"labels (type head): {', '.join(labels)}")

    keras = import_keras()
    from trainer.devices import enable_mixed_precision, select_strategy
    from trainer.tfutil import import_tf

    # Keras's per-model predict() retrace notice is expected here (bottom, top, full model) and only noise.
    import_tf().get_logger().setLevel("ERROR")

    choice = select_strategy(cfg.device, cfg.tpu)
    echo(f"device: {choice.description}")
    previous_policy = enable_mixed_precision(choice)
    try:
        keras.utils.set_random_seed(cfg.seed)
        from trainer.model import build_classifier

        t = time.time()
        from trainer.data.roi import load_roi, roi_info

        roi = load_roi(cfg.roi, cfg.input_size) if cfg.roi else None
        with choice.strategy.scope():
            model = build_classifier(len(labels), alpha=cfg.alpha, input_size=cfg.input_size, weights=cfg.weights,
                                     dropout=cfg.dropout, roi=roi)
        echo(f"model: MobileNetV2 alpha={cfg.alpha} input={cfg.input_size} weights={cfg.weights or 'none'} "
             f"({model.count_params():,} parameters, built in {time.time() - t:.1f}s)")

        x = {s: load_split(files[s], root, cfg.input_size, echo, s) for s in ("train", "val", "test") if files[s]}
        y_def = {s: np.array([f["label"] for f in files[s]], np.float32) for s in files}
        # Val/test defect types unseen in train get index -1 for the type head: masked by a 0 weight.
        y_type = {s: np.array([index.get(f["type"], -1) for f in files[s]], np.int64) for s in files}
        bs = cfg.batch_size * max(choice.replicas, 1)
        w_def = class_weights(y_def["train"], 2)
        w_type = class_weights(y_type["train"], len(labels))
        echo("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(("good", "defective"), w_def))
             + " | types: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(labels, w_type)))

        def weights_of(s):
            yt = y_type[s]
            wt = np.where(yt >= 0, w_type[np.clip(yt, 0, None)], 0.0).astype(np.float32)
            return {"defect": w_def[y_def[s].astype(int)].astype(np.float32), "type": wt}

        def targets_of(s):
            return {"defect": y_def[s][:, None], "type": np.clip(y_type[s], 0, None)}

        histories = {}
        augmenter = build_augmenter(cfg.augment, cfg.seed)
        if choice.kind == "cpu":
            histories, timing = train_cached(model, x, targets_of, weights_of, augmenter, cfg, echo, bs, choice)
        else:
            histories, timing = train_images(model, x, targets_of, weights_of, augmenter, cfg, echo, bs, choice)

        if choice.mixed_precision:
            model = float32_twin(model, labels, cfg)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    # ---- threshold on val, moved into the model (decision at 0.5), then evaluation of the model that gets saved
    t = time.time()
    raw_val = np.asarray(model.predict(x["val"], batch_size=bs, verbose=0)["defect"], np.float64)[:, 0]
    raw_thr, thr_info = decide_threshold(y_def["val"], raw_val, cfg.threshold_policy)
    raw_thr = float(np.clip(raw_thr, 1e-7, 1 - 1e-7))  # a saturated val score would put logit(t) at infinity
    from trainer.model import shift_decision_to_half

    shift_decision_to_half(model, raw_thr)
    scores, types_pred = {}, {}
    for s in ("val", "test"):
        if s in x:
            out = model.predict(x[s], batch_size=bs, verbose=0)
            scores[s] = np.asarray(out["defect"], np.float64)[:, 0]
            types_pred[s] = np.argmax(np.asarray(out["type"]), axis=1)
    thr_info.update(raw_threshold=float(raw_thr), decision_shift_logit=float(logit(raw_thr)),
                    val_verdicts_changed_by_shift=int(np.sum((raw_val >= raw_thr) != (scores["val"] >= DECISION))))
    timing["evaluate_s"] = time.time() - t
    metrics = evaluate_classifier(cfg, files, labels, y_def, y_type, scores, types_pred, echo, thr_info)
    metrics.update(histories={k: v for k, v in histories.items()}, device=choice.description,
                   strategy=choice.name, class_weights={"good": float(w_def[0]), "defective": float(w_def[1]),
                                                        "types": dict(zip(labels, map(float, w_type)))},
                   counts={s: {"n": len(files[s]), "defective": int(sum(f["label"] for f in files[s]))} for s in files})

    # ---- outputs
    from edge.atomic import new_run_dir
    from trainer.data.run_contract import write_run_files
    from trainer.golden import golden_for

    run_dir = new_run_dir(cfg.project, cfg.name)
    save_model(model, run_dir / "model.keras")
    from trainer.classifier_update import feature_model, features, save_classifier_cache

    # what train --update refits the heads on (trainer/classifier_update.py), instead of the images again
    fmodel = feature_model(model)
    save_classifier_cache(run_dir, {s: features(fmodel, x[s], bs) for s in x}, files, labels)
    timing["total_to_saved_model_s"] = time.time() - t_start
    metrics["timing"] = {k: round(float(v), 3) for k, v in timing.items()}
    from trainer.plots import plot_confusion, plot_curves

    plot_curves(histories, run_dir / "curves.png", title=f"{run_dir.name}: classifier training")
    plot_confusion({"val": metrics["val"], "test": metrics.get("test")}, run_dir / "confusion.png",
                   title=f"{run_dir.name}: defective vs good at threshold {metrics['threshold']:.3g} "
                         f"(raw {float(raw_thr):.3g})")
    write_run_files(run_dir, cfg=cfg, manifest=manifest, task="classifier", labels=labels,
                    input_size=cfg.input_size, threshold=metrics["threshold"], threshold_policy=cfg.threshold_policy,
                    metrics=metrics, golden=golden_for(files, scores), extra={"mode": "classifier", "device": choice.description,
                                            "raw_threshold": float(raw_thr),
                                            **({"roi": roi_info(cfg.roi, roi)} if roi is not None else {}),
                                            "outputs": {"defect": "sigmoid (B,1), decision at 0.5", "type": "softmax (B,K)"}})
    echo(f"total {time.time() - t_start:.1f}s")
    echo(f"run saved: {run_dir}")
    return run_dir


