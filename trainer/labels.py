"""The classifier's label side: type-head labels, class weights, and the splits it cannot learn from."""
from __future__ import annotations

import numpy as np

from edge.errors import DataError
from trainer.data.run_contract import GOOD


def class_weights(labels, n_classes):
    """Per-class weights n / (n_present_classes * n_c); classes absent from ``labels`` get 0."""
    labels = np.asarray(labels, dtype=int).ravel()
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = len(labels) / (present.sum() * counts[present])
    return w


def sample_weights(labels, n_classes):
    return class_weights(labels, n_classes)[np.asarray(labels, dtype=int)].astype(np.float32)


def head_labels(train_files, classes):
    """Type-head labels: "good" then the defect types present in train, in manifest order."""
    present = {f["type"] for f in train_files}
    return [GOOD] + [c for c in classes if c != GOOD and c in present]


def check_split(split_files, manifest_name="manifest"):
    """One-line errors for splits a classifier cannot learn from."""
    train = split_files["train"]
    if not any(f["label"] == 0 for f in train):
        raise DataError(f"{manifest_name}: the train split has no good images; put good parts in train/good")
    if not any(f["label"] == 1 for f in train):
        raise DataError(
            f"{manifest_name}: the train split has no defective images, so a classifier cannot learn them; "
            "use --protocol supervised --defects-per-type N, or --mode anomaly for good-only training")
    if not split_files["val"]:
        raise DataError(f"{manifest_name}: the val split is empty; the threshold needs it (raise val_fraction)")
