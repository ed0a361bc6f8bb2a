"""The classifier's two training phases (heads on the frozen backbone, then fine-tuning the top blocks).

On the CPU both run on cached activations of the frozen bottom (augmented copies made once); on a
GPU/TPU on images with on-the-fly augmentation. One fit loop serves both (:func:`fit`).
"""
from __future__ import annotations

import time

import numpy as np

from trainer.augment import augmented


def epoch_echo(phase, epochs, progress):
    """A Keras callback that reports each epoch: a bar on a terminal, else ``  [phase] epoch i/n ...`` lines."""
    import contextlib

    from trainer.tfutil import import_keras

    keras = import_keras()
    keys = ("loss", "val_loss", "val_defect_auc")

    def line(done, total, info):
        parts = " ".join(f"{k} {info[k]:.4f}" for k in keys if k in info)
        return f"  [{phase}] epoch {done}/{total} {parts} ({info.get('s', 0.0):.1f}s)"

    class EpochEcho(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.stack = contextlib.ExitStack()
            self.step = self.stack.enter_context(progress.bar(epochs, f"[{phase}] epochs", every=1, line=line))

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.step(**{k: float(logs[k]) for k in keys if k in logs}, s=time.time() - self.t)

        def on_train_end(self, logs=None):
            self.stack.close()

    return EpochEcho()


def _compile(model, lr, cfg):
    from trainer.tfutil import import_keras

    keras = import_keras()
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss={"defect": "binary_crossentropy", "type": "sparse_categorical_crossentropy"},
        loss_weights={"defect": 1.0, "type": cfg.type_loss_weight},
        metrics={"defect": [keras.metrics.AUC(name="auc")]},
    )


def fit(model, data, val, epochs, lr, cfg, phase, echo, batch_size=None):
    """One phase: compile, fit with early stopping on val defect loss (best weights restored), report.

    ``data``: ``(x, targets, sample weights)`` arrays (CPU cache) or a tf.data dataset (images);
    ``val`` the same kind. Returns (history, seconds, epochs run).
    """
    from trainer.tfutil import import_keras

    keras = import_keras()
    _compile(model, lr, cfg)
    stop = keras.callbacks.EarlyStopping(monitor="val_defect_loss", mode="min", patience=cfg.patience, restore_best_weights=True)
    t = time.time()
    if isinstance(data, tuple):
        x, targets, weights = data
        kw = dict(x=x, y=targets, sample_weight=weights, batch_size=batch_size, shuffle=True)
    else:
        kw = dict(x=data)
    hist = model.fit(**kw, validation_data=val, epochs=epochs, verbose=0, callbacks=[stop, epoch_echo(phase, epochs, echo)])
    n = len(hist.history.get("loss", []))
    best = int(np.argmin(hist.history["val_defect_loss"])) + 1 if n else 0
    echo(f"  [{phase}] {n} epochs in {time.time() - t:.1f}s, best val_defect_loss at epoch {best} (weights restored)")
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}, time.time() - t, n


def _image_dataset(x, targets, weights, batch, augmenter, shuffle, seed):
    """tf.data of raw pixels (accelerator path): augmentation runs on the host per batch."""
    from trainer.tfutil import import_tf

    tf = import_tf()
    ds = tf.data.Dataset.from_tensor_slices((x, targets, weights) if weights is not None else (x, targets))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)

    def prep(xb, *rest):
        xb = tf.cast(xb, tf.float32)
        if augmenter is not None:
            xb = augmenter(xb, training=True)
        return (xb, *rest)

    return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def train_cached(model, x, targets_of, weights_of, augmenter, cfg, echo, bs, choice):
    """CPU path: cache the frozen bottom's activations once, then train the top on them."""
    from trainer.model import split_at_block

    timing = {}
    n_ft = cfg.fine_tune_blocks if cfg.fine_tune_epochs > 0 else 0
    with choice.strategy.scope():
        bottom, top = split_at_block(model, n_ft)
        _, head = split_at_block(model, 0) if n_ft else (None, top)

    t = time.time()
    copies = [x["train"].astype(np.float32)]
    for c in range(cfg.aug_copies if augmenter is not None else 0):
        copies.append(augmented(x["train"], augmenter))
    timing["augment_s"] = time.time() - t
    t = time.time()
    acts = np.concatenate([bottom.predict(c, batch_size=bs, verbose=0) for c in copies])
    acts_val = bottom.predict(x["val"].astype(np.float32), batch_size=bs, verbose=0)
    n_imgs = len(acts) + len(acts_val)
    timing["feature_cache_s"] = time.time() - t
    echo(f"cache: {len(copies)}x{len(x['train'])} train + {len(acts_val)} val images through the frozen bottom "
         f"-> {acts.shape[1:]} in {timing['feature_cache_s']:.1f}s ({1000 * timing['feature_cache_s'] / n_imgs:.0f} ms/image)")
    reps = len(copies)
    tgt = {k: np.concatenate([v] * reps) for k, v in targets_of("train").items()}
    wts = {k: np.concatenate([v] * reps) for k, v in weights_of("train").items()}
    val_t, val_w = targets_of("val"), weights_of("val")

    if n_ft:
        # Pooled features for phase 1 come from the (still frozen) upper blocks applied to the cache.
        from trainer.model import pooled_features

        with choice.strategy.scope():
            to_pooled = pooled_features(model, n_ft)
        feats = to_pooled.predict(acts, batch_size=bs, verbose=0)
        feats_val = to_pooled.predict(acts_val, batch_size=bs, verbose=0)
    else:
        feats, feats_val = acts, acts_val

    histories = {}
    if cfg.epochs:
        with choice.strategy.scope():
            histories["head"], dt, n = fit(head, (feats, tgt, wts), (feats_val, val_t, val_w), cfg.epochs,
                                           cfg.learning_rate, cfg, "head", echo, bs)
        timing["head_s"], timing["head_epoch_s"] = dt, dt / max(n, 1)
    if n_ft:
        from trainer.model import set_fine_tune_blocks

        with choice.strategy.scope():
            set_fine_tune_blocks(model, n_ft)
            histories["fine_tune"], dt, n = fit(top, (acts, tgt, wts), (acts_val, val_t, val_w), cfg.fine_tune_epochs,
                                                cfg.fine_tune_learning_rate, cfg, "fine-tune", echo, bs)
        set_fine_tune_blocks(model, 0)
        timing["fine_tune_s"], timing["fine_tune_epoch_s"] = dt, dt / max(n, 1)
    return histories, timing


def train_images(model, x, targets_of, weights_of, augmenter, cfg, echo, bs, choice):
    """Accelerator path: both phases on images with on-the-fly augmentation."""
    from trainer.model import set_fine_tune_blocks

    timing, histories = {}, {}
    train_ds = _image_dataset(x["train"], targets_of("train"), weights_of("train"), bs, augmenter, True, cfg.seed)
    val_ds = _image_dataset(x["val"], targets_of("val"), weights_of("val"), bs, None, False, cfg.seed)
    phases = [("head", cfg.epochs, cfg.learning_rate, 0)]
    if cfg.fine_tune_epochs:
        phases.append(("fine-tune", cfg.fine_tune_epochs, cfg.fine_tune_learning_rate, cfg.fine_tune_blocks))
    for phase, epochs, lr, n_blocks in phases:
        if not epochs:
            continue
        with choice.strategy.scope():
            set_fine_tune_blocks(model, n_blocks)
            hist, dt, n = fit(model, train_ds, val_ds, epochs, lr, cfg, phase, echo)
        histories[phase.replace("-", "_")] = hist
        timing[f"{phase.replace('-', '_')}_s"], timing[f"{phase.replace('-', '_')}_epoch_s"] = dt, dt / max(n, 1)
    set_fine_tune_blocks(model, 0)
    return histories, timing


def float32_twin(model, labels, cfg):
    """Mixed-precision training leaves float16 compute in layer configs; deploy a float32 copy."""
    from trainer.tfutil import import_keras

    keras = import_keras()
    keras.mixed_precision.set_global_policy("float32")
    from trainer.model import build_classifier

    import numpy as np

    has_roi = "roi" in {layer.name for layer in model.layers}
    roi = np.ones(tuple(model.input.shape[1:3]), np.float32) if has_roi else None  # the mask comes with the weights
    twin = build_classifier(len(labels), alpha=cfg.alpha, input_size=cfg.input_size, weights=None, dropout=cfg.dropout,
                            roi=roi)
    twin.set_weights(model.get_weights())
    return twin
