"""Images for calibration and parity: read from the run's own manifest, never guessed.

The int8 variant is calibrated on the run's *training* images (the distribution
the model was fitted to), stratified across defect types so that a rare type's
activations are not clipped, seeded so two exports of one run are identical.
Parity uses the held-out split. Pixels come from the same loader as training
(``trainer.data.dataset.load_batch``), un-augmented; the files from the run's manifest
through ``trainer.data.run_contract``.
"""
from __future__ import annotations

import math
import os

import numpy as np

from edge.errors import ImageError
from edge.progress import as_progress
from export.errors import ExportError
from trainer.data.dataset import load_batch

DEFAULT_CALIB_SIZE = 300


def stratified_sample(files: list[dict], n: int, seed: int = 0, key: str = "type") -> list[dict]:
    """``n`` entries (all when fewer) spread across ``key`` in proportion, every class at least once.

    Largest-remainder allocation, then a seeded draw inside each class; the
    result is sorted by path so the order does not depend on the seed's draw.
    """
    if n <= 0:
        raise ExportError(f"calibration size must be positive, got {n}")
    if len(files) <= n:
        return sorted(files, key=lambda f: f["path"])
    groups: dict[str, list[dict]] = {}
    for f in sorted(files, key=lambda f: f["path"]):
        groups.setdefault(str(f.get(key, "?")), []).append(f)
    names = sorted(groups)
    total = len(files)
    # Every class gets one (when n allows), the rest in proportion to class size.
    base = {c: min(1, len(groups[c])) if n >= len(names) else 0 for c in names}
    left = n - sum(base.values())
    want = {c: left * len(groups[c]) / total for c in names}
    alloc = {c: base[c] + int(math.floor(want[c])) for c in names}
    rema = sorted(names, key=lambda c: (want[c] - math.floor(want[c]), len(groups[c])), reverse=True)
    short = n - sum(alloc.values())
    i = 0
    while short > 0:
        c = rema[i % len(rema)]
        if alloc[c] < len(groups[c]):
            alloc[c] += 1
            short -= 1
        i += 1
    rng = np.random.default_rng(seed)
    chosen = []
    for c in names:
        k = min(alloc[c], len(groups[c]))
        idx = rng.choice(len(groups[c]), size=k, replace=False)
        chosen.extend(groups[c][j] for j in sorted(idx))
    return sorted(chosen, key=lambda f: f["path"])


def load_images(paths, size, skip_bad=False, progress=None, what="images", chunk=32):
    """uint8 array (N, H, W, 3) of ``paths``; a bad file raises (naming it) unless ``skip_bad``.

    Returns (array, kept_paths, skipped) where skipped is a list of "path: reason".
    """
    from edge.preprocess import as_hw

    h, w = as_hw(size)
    progress = as_progress(progress)
    out, kept, skipped = [], [], []
    paths = [os.fspath(p) for p in paths]
    with progress.bar(len(paths), f"{what} loaded") as step:
        _load_chunks(paths, (h, w), skip_bad, progress, what, chunk, out, kept, skipped, step)
    arr = np.concatenate(out) if out else np.zeros((0, h, w, 3), np.uint8)
    return arr, kept, skipped


def _load_chunks(paths, hw, skip_bad, progress, what, chunk, out, kept, skipped, step):
    h, w = hw
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        try:
            arr = np.asarray(load_batch(part, (h, w)), dtype=np.uint8)
            out.append(arr)
            kept.extend(part)
        except ImageError as exc:
            if not skip_bad:
                raise ImageError(exc.path, f"{exc.reason} [in the {what}]",
                                 "fix or remove the file, or pass --skip-bad to leave it out") from None
            for p in part:  # find the bad ones, keep the rest
                try:
                    out.append(np.asarray(load_batch([p], (h, w)), dtype=np.uint8))
                    kept.append(p)
                except ImageError as e:
                    skipped.append(str(e))
                    progress(f"  warning: skipped {e}")
        step(len(part))


def calibration_set(train, size, calib_size=DEFAULT_CALIB_SIZE, seed=0, skip_bad=False, progress=None, where="run"):
    """(images uint8 (N,H,W,3), info dict) from the training split's file dicts (with ``abspath``), stratified
    by type; ``where`` names the run in errors."""
    if not train:
        raise ExportError(f"{where}/manifest.json: no 'train' images to calibrate int8 with; re-split the data")
    chosen = stratified_sample(train, calib_size, seed=seed)
    images, kept, skipped = load_images([f["abspath"] for f in chosen], size, skip_bad=skip_bad,
                                        progress=progress, what="calibration images")
    if len(images) == 0:
        raise ExportError(f"{where}: every calibration image was unreadable; check the dataset under "
                          f"{os.path.dirname(chosen[0]['abspath'])}")
    counts: dict[str, int] = {}
    kept_set = set(kept)
    for f in chosen:
        if f["abspath"] in kept_set:
            counts[str(f.get("type"))] = counts.get(str(f.get("type")), 0) + 1
    info = {"split": "train", "n": int(len(images)), "requested": int(calib_size), "seed": int(seed),
            "per_type": counts, "skipped": skipped, "input_range_pins": "one pixel at 0 and one at 255"}
    return images, info


def representative_dataset(images):
    """Converter callback: every image once (float raw pixels, batch 1), the first one twice more with a
    single pixel set to 0 and to 255.

    The two pinned pixels fix the input range to exactly 0..255, so the uint8 input
    quantization becomes scale 1.0 / zero-point 0 (raw pixels, no device-side math). One
    pixel barely moves any internal activation; whole black/white frames would stretch the
    ranges of every layer and cost int8 precision everywhere.
    """
    def gen():
        for img in images:
            yield [img[None].astype(np.float32)]
        for value in (0.0, 255.0):
            pinned = images[0][None].astype(np.float32)
            pinned[0, 0, 0, :] = value
            yield [pinned]

    return gen
