"""Synthetic defects painted onto the user's own good images (the originating report's "future work").

Three kinds, each through a random smooth mask so edges look like material, not stickers:

* ``patch``: a region of another good image (or of this one, elsewhere) pasted in (CutPaste-style: the
  part's own texture in the wrong place);
* ``scratch``: a thin random polyline, darker or lighter than the surface;
* ``hole``: a dark blob with a soft rim.

Pure functions over uint8 (H, W, 3) arrays and a numpy Generator; no TensorFlow.
"""
from __future__ import annotations

import numpy as np

KINDS = ("patch", "scratch", "hole")


def smooth_mask(h, w, rng, size=(0.06, 0.2)):
    """A soft (h, w) mask in [0, 1]: a random ellipse, its edge blurred by a few pixels."""
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    ry, rx = (rng.uniform(*size) * s for s in (h, w))
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = yy - cy, xx - cx
    u = (x * np.cos(theta) + y * np.sin(theta)) / rx
    v = (-x * np.sin(theta) + y * np.cos(theta)) / ry
    r = np.sqrt(u * u + v * v)
    wobble = 1.0 + 0.25 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 6.28))
    return np.clip((wobble - r) * 4.0, 0.0, 1.0)


def _patch(img, donor, rng):
    h, w = img.shape[:2]
    m = smooth_mask(h, w, rng)
    dy, dx = int(rng.integers(-h // 3, h // 3 + 1)), int(rng.integers(-w // 3, w // 3 + 1))
    src = np.roll(np.roll(donor, dy, 0), dx, 1).astype(np.float32)
    return img.astype(np.float32) * (1 - m[..., None]) + src * m[..., None]


def _scratch(img, rng):
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    n = int(rng.integers(3, 7))
    pts = np.cumsum(rng.normal(0, 0.08, (n, 2)), 0) + rng.uniform(0.25, 0.75, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    width = max(1.0, rng.uniform(0.004, 0.012) * max(h, w))
    mask = np.zeros((h, w), np.float32)
    for (y0, x0), (y1, x1) in zip(pts[:-1] * [h, w], pts[1:] * [h, w]):
        d = np.array([y1 - y0, x1 - x0])
        t = np.clip(((yy - y0) * d[0] + (xx - x0) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
        dist = np.hypot(yy - (y0 + t * d[0]), xx - (x0 + t * d[1]))
        mask = np.maximum(mask, np.clip(1.5 - dist / width, 0, 1))
    shade = rng.choice([-1.0, 1.0]) * rng.uniform(50, 110)
    return out + shade * mask[..., None]


def _hole(img, rng):
    h, w = img.shape[:2]
    m = smooth_mask(h, w, rng, size=(0.03, 0.08))
    dark = img.astype(np.float32) * rng.uniform(0.1, 0.4)
    return img.astype(np.float32) * (1 - m[..., None]) + dark * m[..., None]


def paint(img, donor, rng, kind=None):
    """One synthetic defect on ``img`` (uint8 HxWx3); ``donor`` is another good image (same size)."""
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    if kind == "patch":
        out = _patch(img, donor, rng)
    elif kind == "scratch":
        out = _scratch(img, rng)
    elif kind == "hole":
        out = _hole(img, rng)
    else:
        raise ValueError(f"unknown defect kind {kind!r}; choose one of {', '.join(KINDS)}")
    return np.clip(out, 0, 255).astype(np.uint8)


def paint_many(good, n, seed=0):
    """``n`` painted copies of random good images (N, H, W, 3) uint8 -> (n, H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(good), size=(n, 2))
    return np.stack([paint(good[i], good[j], rng) for i, j in idx]) if n else good[:0]
