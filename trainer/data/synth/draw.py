"""Drawing helpers both part generators share: smooth noise, blur, masks, and how many defects are subtle."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

SUBTLE_FRACTION = 0.15
_MIN_ALPHA = 0.04  # weaker blending is invisible after rounding to uint8; kept out of the mask
_KIND_ID = {"hazelnut": 1, "casting": 2}  # part of every image's seed


def _smooth_noise(rng, size, cells, lo=-1.0, hi=1.0):
    """Low-frequency noise: a random ``cells`` x ``cells`` grid upsampled bicubically."""
    grid = rng.uniform(lo, hi, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BICUBIC), dtype=np.float32)


def _blur(a, radius):
    if radius <= 0:
        return a
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a.astype(np.float32), radius, mode="nearest", truncate=3.0)


def _canvas(size):
    return Image.new("L", (size, size), 0)


def _alpha(img):
    return np.asarray(img, dtype=np.float32) / 255.0


def _pit_layers(rng, size, x, y, radius, aspect, angle, dark, rim_col, rim_w):
    """Round pit: dark centre fading outward, and a rim ring; returns alpha, colour."""
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    c, s_ = math.cos(angle), math.sin(angle)
    dx, dy = xx - x, yy - y
    p = (dx * c + dy * s_) / radius
    q = (-dx * s_ + dy * c) / (radius * aspect)
    r = np.sqrt(p * p + q * q)
    inner = np.clip((1 - r) * radius, 0, 1)                      # antialiased disc
    depth = np.clip(1 - r, 0, 1) ** 0.5
    rim = np.clip(1 - np.abs(r - 1 - rim_w / 2) / (rim_w / 2), 0, 1) * (r > 1)
    alpha = np.maximum(inner, rim * 0.8)
    color = (np.asarray(dark, np.float32) * (1.4 - 0.6 * depth)[..., None]) * inner[..., None] \
        + np.asarray(rim_col, np.float32) * (1 - inner)[..., None]
    return alpha, color
