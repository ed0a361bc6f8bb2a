"""``train --update RUN`` for a classifier run: refit the two heads on cached features plus the added images.

At train time the pooled backbone features of every train/val/test image (the input of the heads;
unaffected by the decision shift folded into the defect head) are kept in ``RUN/update_cache.npz``
with their labels and types. An update extracts the added images' features once, refits the heads
(starting from the parent's weights, the same losses and class weighting as training) on old + added
training features, places the threshold on the cached val features for the run's policy and reports
on the cached test features: no old image is decoded or run through the backbone again. Added defects
of a type the parent's type head does not know still teach the defect head; their type is not learned
(the head's classes are fixed by the parent) and the run says so.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from trainer.data.run_contract import read_update_cache, write_update_cache

SPLITS = ("train", "val", "test")


def feature_model(model):
    """Pixels -> the pooled features the heads read (layer ``pool`` of trainer/model.py)."""
    from trainer.tfutil import import_keras

    return import_keras().Model(model.inputs[0], model.get_layer("pool").output)


def features(fmodel, x, batch_size=32):
    return np.asarray(fmodel.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0), np.float32)


def save_classifier_cache(run_dir, feats: dict, files: dict, labels):
    arrays = {}
    for s in SPLITS:
        if s in feats:
            arrays[f"{s}_x"] = feats[s]
            arrays[f"{s}_label"] = np.array([int(f["label"]) for f in files[s]], np.int64)
            arrays[f"{s}_type"] = np.array([f["type"] for f in files[s]], dtype="U64")
            arrays[f"{s}_sha256"] = np.array([f["sha256"] for f in files[s]], dtype="U64")
    arrays["labels"] = np.array(list(labels), dtype="U64")
    write_update_cache(run_dir, arrays)


def load_classifier_cache(run_dir) -> dict:
    return read_update_cache(run_dir)


def _head_model(model, dim, dropout):
    """The parent's two heads on a (dim,) feature input, sharing its weights' values (a copy)."""
    from trainer.tfutil import import_keras

    keras = import_keras()
    inp = keras.Input((dim,), name="features")
    x = keras.layers.Dropout(dropout, name="dropout")(inp)
    outs = {}
    for name in ("defect", "type"):
        src = model.get_layer(name)
        layer = keras.layers.Dense(src.units, activation=src.activation, name=name,
                                   kernel_regularizer=src.kernel_regularizer)
        outs[name] = layer(x)
        layer.set_weights(src.get_weights())
    return keras.Model(inp, outs, name="heads")


def update_classifier(parent_dir, parent_info, added, echo, seed=None):
    from edge.atomic import new_run_dir
    from edge.preprocess import as_hw
    from trainer.config import load_config
    from trainer.data.dataset import load_batch
    from trainer.data.run_contract import make_lineage, resolve_root, run_manifest, split_items, write_run_files
    from trainer.evaluate import evaluate_classifier
    from trainer.golden import golden_for
    from trainer.labels import class_weights
    from trainer.layers import load_model, save_model
    from trainer.model import shift_decision_to_half
    from trainer.phases import fit
    from trainer.threshold import DECISION, decide_threshold, logit
    from trainer.tfutil import import_keras

    from edge.progress import as_progress

    echo = as_progress(echo)  # the fit loop reports epochs on its bars
    t0 = time.time()
    parent_dir = Path(parent_dir)
    cfg = load_config(parent_dir / "config.json")
    import_keras().utils.set_random_seed(cfg.seed if seed is None else int(seed))
    cache = load_classifier_cache(parent_dir)
    labels = [str(v) for v in cache["labels"]]
    index = {c: i for i, c in enumerate(labels)}
    unknown = sorted({a["type"] for a in added if a["label"] == 1 and a["type"] not in index})
    if unknown:
        echo(f"note: defect type(s) {', '.join(unknown)} are not in {parent_dir.name}'s type head "
             f"({', '.join(labels[1:])}): they teach 'defective', not their type (re-train to add a type)")
    size = as_hw(parent_info["input_size"])
    model = load_model(parent_dir / "model.keras")
    fmodel = feature_model(model)
    x_add = features(fmodel, load_batch([a["abspath"] for a in added], size))
    echo(f"features of {len(added)} added image(s) in {time.time() - t0:.1f}s")

    x = {s: cache[f"{s}_x"] for s in SPLITS if f"{s}_x" in cache}
    y_def = {s: cache[f"{s}_label"].astype(np.float32) for s in x}
    y_type = {s: np.array([index.get(str(t), -1) for t in cache[f"{s}_type"]], np.int64) for s in x}
    x["train"] = np.concatenate([x["train"], x_add])
    y_def["train"] = np.concatenate([y_def["train"], np.array([a["label"] for a in added], np.float32)])
    y_type["train"] = np.concatenate([y_type["train"], np.array([index.get(a["type"], -1) for a in added], np.int64)])
    w_def, w_type = class_weights(y_def["train"], 2), class_weights(y_type["train"][y_type["train"] >= 0], len(labels))

    def data(s):
        yt = y_type[s]
        weights = {"defect": w_def[y_def[s].astype(int)].astype(np.float32),
                   "type": np.where(yt >= 0, w_type[np.clip(yt, 0, None)], 0.0).astype(np.float32)}
        return x[s], {"defect": y_def[s][:, None], "type": np.clip(yt, 0, None)}, weights

    heads = _head_model(model, x["train"].shape[1], cfg.dropout)
    history, fit_s, _ = fit(heads, data("train"), data("val"), cfg.epochs, cfg.learning_rate, cfg, "update heads",
                            echo, batch_size=cfg.batch_size)
    for name in ("defect", "type"):
        model.get_layer(name).set_weights(heads.get_layer(name).get_weights())
    raw_val = np.asarray(heads.predict(x["val"], verbose=0)["defect"], np.float64)[:, 0]
    raw_thr, thr_info = decide_threshold(y_def["val"], raw_val, cfg.threshold_policy)
    raw_thr = float(np.clip(raw_thr, 1e-7, 1 - 1e-7))
    shift_decision_to_half(model, raw_thr)
    shift_decision_to_half(heads, raw_thr)
    scores, types_pred = {}, {}
    for s in ("val", "test"):
        if s in x:
            out = heads.predict(x[s], verbose=0)
            scores[s] = np.asarray(out["defect"], np.float64)[:, 0]
            types_pred[s] = np.argmax(np.asarray(out["type"]), axis=1)
    thr_info.update(raw_threshold=raw_thr, decision_shift_logit=float(logit(raw_thr)),
                    val_verdicts_changed_by_shift=int(np.sum((raw_val >= raw_thr) != (scores["val"] >= DECISION))))
    manifest = run_manifest(parent_dir)
    root = resolve_root(manifest, parent_dir / "manifest.json")
    files = {s: split_items(manifest, s, root) for s in SPLITS}
    metrics = evaluate_classifier(cfg, files, labels, y_def, y_type, scores, types_pred, echo, thr_info)
    metrics.update(histories={"update": history}, updated_from=str(parent_dir), added=[a["file"] for a in added],
                   update_seconds=round(time.time() - t0, 2))
    base = re.sub(r"\d+$", "", parent_dir.name) or parent_dir.name
    run_dir = new_run_dir(parent_dir.parent, base)
    save_model(model, run_dir / "model.keras")
    files_new = dict(files, train=files["train"] + [dict(a) for a in added])
    save_classifier_cache(run_dir, x, files_new, labels)
    extra = {k: parent_info[k] for k in ("mode", "device", "outputs", "roi") if k in parent_info}
    write_run_files(run_dir, cfg=cfg, manifest=manifest, task="classifier", labels=labels,
                    input_size=parent_info["input_size"], threshold=metrics["threshold"],
                    threshold_policy=cfg.threshold_policy, metrics=metrics,
                    extra=dict(extra, raw_threshold=raw_thr), golden=golden_for(files, scores),
                    lineage=make_lineage(parent_dir, parent_info, added))
    echo(f"updated in {time.time() - t0:.1f}s; run folder: {run_dir}")
    return run_dir
