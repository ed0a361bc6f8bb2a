"""Anomaly maps as pictures: a heat map blended over the part, defect regions outlined.

NumPy + Pillow only: the device runtime (``predict --save-maps``, ``watch``)
and the trainer both call it, and a Pi has neither TensorFlow nor matplotlib.
Maps are the model's normalised output (0..1, decision threshold 0.5), usually
at a coarse grid (e.g. 28x28 for a 224 input); they are upsampled bilinearly to
the image so the outline follows the part, not the grid.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# A perceptually ordered dark-blue -> cyan -> yellow -> red ramp (value, RGB), linearly interpolated.
_RAMP = np.array([
    [0.00, 0, 0, 96],
    [0.25, 0, 96, 255],
    [0.50, 0, 224, 200],
    [0.70, 255, 230, 0],
    [0.85, 255, 120, 0],
    [1.00, 220, 0, 0],
], dtype=np.float64)
OUTLINE_RGB = (255, 255, 255)
IGNORED_DIM = 0.35  # brightness of the area a --roi model ignores


def colorize(values) -> np.ndarray:
    """Values in [0, 1] (any shape) -> uint8 RGB (..., 3) on the heat ramp."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0, 1.0)
    rgb = [np.interp(v, _RAMP[:, 0], _RAMP[:, c]) for c in (1, 2, 3)]
    return np.rint(np.stack(rgb, axis=-1)).astype(np.uint8)


def _check(image, anomaly_map):
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"overlay needs an HxWx3 uint8 RGB image, got {img.dtype} {img.shape}")
    m = np.asarray(anomaly_map, dtype=np.float32)
    while m.ndim > 2 and m.shape[0] == 1:  # (1, h, w) straight from a batch-1 interpreter
        m = m[0]
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"anomaly map must be 2-D (h, w), got shape {np.asarray(anomaly_map).shape}")
    return img, m


def upsample_map(anomaly_map, height, width) -> np.ndarray:
    """(h, w) float map -> (height, width) float32, bilinear (Pillow 'F' mode keeps floats)."""
    m = np.asarray(anomaly_map, dtype=np.float32)
    if m.shape == (height, width):
        return m.copy()
    return np.asarray(Image.fromarray(m, mode="F").resize((width, height), Image.BILINEAR), dtype=np.float32)


def _outline(mask):
    """Boundary pixels of a boolean mask (mask minus its 4-neighbour erosion), 2 px thick."""
    inner = mask.copy()
    for _ in range(2):
        p = np.pad(inner, 1, constant_values=False)
        inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def roi_mask(grid, height, width):
    """Metadata ``roi.grid`` (rows of "0"/"1") -> (height, width) bool, True where the model inspects."""
    g = np.array([[c == "1" for c in row] for row in grid], dtype=np.uint8) * 255
    return np.asarray(Image.fromarray(g, mode="L").resize((width, height), Image.NEAREST)) > 127


def overlay_image(image_rgb_uint8, anomaly_map_float, threshold=0.5, alpha=0.55, outline=True,
                  roi=None) -> Image.Image:
    """The image with the heat map blended in and regions >= ``threshold`` outlined.

    Blending grows with the map value (good areas stay readable, hot areas
    are coloured); the outline marks exactly what the model calls defective.
    ``roi``: the model's ROI grid (metadata ``roi.grid``): the ignored area is shown dimmed, unmapped.
    """
    img, m = _check(image_rgb_uint8, anomaly_map_float)
    h, w = img.shape[:2]
    up = np.clip(np.nan_to_num(upsample_map(m, h, w), nan=0.0), 0.0, 1.0)
    heat = colorize(up).astype(np.float32)
    weight = (float(alpha) * (0.35 + 0.65 * up))[..., None]
    out = img.astype(np.float32) * (1.0 - weight) + heat * weight
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if outline:
        edge = _outline(up >= float(threshold))
        out[edge] = OUTLINE_RGB
    if roi:
        ignored = ~roi_mask(roi, h, w)
        out[ignored] = (img[ignored].astype(np.float32) * IGNORED_DIM).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def save_overlay(image_rgb_uint8, anomaly_map_float, out_path, threshold=0.5, **kwargs):
    """Write :func:`overlay_image` as a PNG, atomically (a watcher may pick it up at once)."""
    from edge.atomic import atomic_write_bytes

    buf = io.BytesIO()
    overlay_image(image_rgb_uint8, anomaly_map_float, threshold=threshold, **kwargs).save(buf, format="PNG")
    return atomic_write_bytes(out_path, buf.getvalue())


__all__ = ["colorize", "upsample_map", "roi_mask", "overlay_image", "save_overlay"]
