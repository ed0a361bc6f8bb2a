"""``--roi mask.png``: the region a model inspects (white) and the one it ignores (black).

The mask is read like an image (any size, resized to the model input by ``edge.preprocess``, the same
geometry as every part) and thresholded at half grey. The model bakes it into its graph
(``trainer.roi_layers.RoiFill``: ignored pixels become one constant grey before the backbone), so the
exported ``.tflite`` alone enforces it. Runs and exported files carry its hash, coverage and a coarse
grid (``GRID`` x ``GRID`` rows of 0/1) that heat-map overlays dim.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import DataError

GRID = 32


def load_roi(path, size) -> np.ndarray:
    """(h, w) float32 mask of 0 (ignore) and 1 (inspect) at the model input size."""
    from edge.imageio import load_image

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: ROI mask not found (a black-and-white image: white = inspect, black = ignore)")
    rgb = load_image(p, size)
    mask = (rgb.astype(np.float32).mean(axis=2) >= 127.5).astype(np.float32)
    if not mask.any():
        raise DataError(f"{p}: ROI mask is black everywhere (nothing to inspect); paint the inspected area white")
    return mask


def roi_grid(mask, grid=GRID) -> list:
    """The mask as ``grid`` strings of ``grid`` 0/1 cells (a cell inspects when most of it does)."""
    m = np.asarray(mask, np.float32)
    h, w = m.shape
    ys = np.linspace(0, h, grid + 1).astype(int)
    xs = np.linspace(0, w, grid + 1).astype(int)
    return ["".join("1" if m[ys[i]:max(ys[i + 1], ys[i] + 1), xs[j]:max(xs[j + 1], xs[j] + 1)].mean() >= 0.5 else "0"
                    for j in range(grid)) for i in range(grid)]


def roi_info(path, mask) -> dict:
    """run.json / metadata ``roi``: file name, sha256, inspected share and the coarse grid."""
    from trainer.data.run_contract import file_sha256

    return {"file": Path(path).name, "sha256": file_sha256(path), "coverage": float(np.mean(mask)),
            "grid": roi_grid(mask)}
