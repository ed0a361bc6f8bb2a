"""Casting-like parts (a machined disc) and their blowhole, burr and scratch defects."""
from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from trainer.data.synth.draw import _KIND_ID, _MIN_ALPHA, SUBTLE_FRACTION, _alpha, _blur, _canvas, _pit_layers, _smooth_noise


def _casting_design(seed):
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _KIND_ID["casting"], 99]))
    return {"R": rng.uniform(0.37, 0.42), "bore": rng.uniform(0.16, 0.24), "hub": rng.uniform(0.34, 0.44),
            "n_holes": int(rng.integers(4, 9)), "hole_r": rng.uniform(0.05, 0.08), "hole_ring": rng.uniform(0.6, 0.7),
            "n_ribs": int(rng.integers(3, 7))}


class _Disc:
    """One casting: the design (holes, ribs, proportions) is shared by the whole dataset,
    as on a production line; pose, size and lighting vary per image."""

    def __init__(self, rng, size, design):
        s = size
        self.size = s
        self.cx = s / 2 + rng.uniform(-0.05, 0.05) * s
        self.cy = s / 2 + rng.uniform(-0.05, 0.05) * s
        self.R = s * design["R"] * rng.uniform(0.95, 1.05)
        self.rot = rng.uniform(0, 2 * math.pi)
        self.bore = self.R * design["bore"]
        self.hub = self.R * design["hub"]
        self.n_holes = design["n_holes"]
        self.hole_r = self.R * design["hole_r"]
        self.hole_ring = self.R * design["hole_ring"]
        self.n_ribs = design["n_ribs"]

    def random_point(self, rng, rmin=0.25, rmax=0.85):
        for _ in range(100):
            rr = self.R * rng.uniform(rmin, rmax)
            ang = rng.uniform(0, 2 * math.pi)
            x, y = self.cx + rr * math.cos(ang), self.cy + rr * math.sin(ang)
            if not self.in_hole(x, y):
                return x, y
        return self.cx + self.R * 0.5, self.cy

    def hole_centres(self):
        return [(self.cx + self.hole_ring * math.cos(self.rot + 2 * math.pi * k / self.n_holes),
                 self.cy + self.hole_ring * math.sin(self.rot + 2 * math.pi * k / self.n_holes))
                for k in range(self.n_holes)]

    def in_hole(self, x, y, pad=1.6):
        if math.hypot(x - self.cx, y - self.cy) < self.bore * 1.3:
            return True
        return any(math.hypot(x - hx, y - hy) < self.hole_r * pad for hx, hy in self.hole_centres())


def _casting_base(rng, size, design):
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    disc = _Disc(rng, s, design)
    dx, dy = xx - disc.cx, yy - disc.cy
    r = np.sqrt(dx * dx + dy * dy)
    ang = np.arctan2(dy, dx)

    def ring(r0):
        return np.clip(r0 - r + 0.5, 0, 1)

    outer = ring(disc.R)
    # Height map: rim, raised hub, ribs; holes are cut out below.
    height = 0.6 * outer + 0.25 * np.clip((disc.R - r) / 3, 0, 1) * (r > disc.R * 0.88)
    height = height + 0.3 * ring(disc.hub)
    if disc.n_ribs:
        rib = np.cos(disc.n_ribs * (ang - disc.rot) + math.pi / disc.n_ribs * 0) ** 40
        height = height + 0.2 * rib * (r > disc.hub) * (r < disc.R * 0.88)
    holes = ring(disc.bore)
    for hx, hy in disc.hole_centres():
        hr = np.sqrt((xx - hx) ** 2 + (yy - hy) ** 2)
        holes = np.maximum(holes, np.clip(disc.hole_r - hr + 0.5, 0, 1))
    height = _blur(height, 1.2)
    gy, gx = np.gradient(height)
    la = rng.uniform(0, 2 * math.pi)
    relief = 1 + 6.0 * (gx * math.cos(la) + gy * math.sin(la))

    grey = rng.uniform(115, 170)
    tint = np.array([1.0, rng.uniform(0.98, 1.02), rng.uniform(0.98, 1.06)], np.float32)
    period = rng.uniform(2.5, 4.5)
    grooves = np.sin(2 * math.pi * r / period + 2 * _smooth_noise(rng, s, 5)) * rng.uniform(0.02, 0.05)
    sand = _blur(rng.normal(0, 1, (s, s)).astype(np.float32), 0.7) * rng.uniform(0.06, 0.12)
    mottle = _smooth_noise(rng, s, 10) * rng.uniform(0.04, 0.09)
    light = 1 + rng.uniform(-0.15, 0.15) * (dx * math.cos(la) + dy * math.sin(la)) / disc.R
    metal = grey * (relief * (1 + grooves + sand + mottle) * light * (0.85 + 0.3 * height))
    metal = metal[..., None] * tint

    bg_level = rng.uniform(20, 50)
    bg = bg_level * (1 + 0.2 * _smooth_noise(rng, s, 4))
    bg = bg[..., None] + rng.normal(0, rng.uniform(2, 5), (s, s, 3)).astype(np.float32)
    hole_col = bg * 0.5 + rng.normal(0, 2, (s, s, 3)).astype(np.float32)
    body = outer * (1 - holes)
    img = bg * (1 - outer[..., None]) + metal * outer[..., None]
    img = img * (1 - (outer * holes)[..., None]) + hole_col * (outer * holes)[..., None]
    return img, body, disc, grey * tint


def _blowhole(rng, size, disc, base, subtle):
    s = size
    x, y = disc.random_point(rng)
    alpha = np.zeros((s, s), np.float32)
    color = np.zeros((s, s, 3), np.float32)
    for _ in range(1 if subtle else int(rng.integers(2, 6))):
        px, py = x + rng.normal(0, s * 0.025), y + rng.normal(0, s * 0.025)
        radius = max(1.5, s * rng.uniform(0.02, 0.04) * (0.5 if subtle else 1))
        a, c = _pit_layers(rng, s, px, py, radius, rng.uniform(0.75, 1.0), rng.uniform(0, math.pi),
                           dark=(25, 25, 28), rim_col=base * rng.uniform(1.15, 1.4), rim_w=rng.uniform(0.2, 0.4))
        take = a > alpha
        alpha = np.where(take, a, alpha)
        color = np.where(take[..., None], c, color)
    alpha *= rng.uniform(0.35, 0.55) if subtle else rng.uniform(0.85, 1.0)
    return alpha, color, False


def _burr(rng, size, disc, base, subtle):
    s = size
    # A burr is excess metal on an edge: the outer rim (sticking out) or the bore.
    on_rim = rng.random() < 0.7
    ang = rng.uniform(0, 2 * math.pi)
    r0 = disc.R if on_rim else disc.bore
    ex, ey = disc.cx + r0 * math.cos(ang), disc.cy + r0 * math.sin(ang)
    out = 1 if on_rim else -1
    reach = s * rng.uniform(0.06, 0.11) * (0.55 if subtle else 1)
    spread = s * rng.uniform(0.09, 0.16) * (0.6 if subtle else 1)
    pts = []
    n = int(rng.integers(7, 13))
    for i in range(n):
        t = -1 + 2 * i / (n - 1)
        along = t * spread / 2
        radial = out * reach * (1 - t * t) * rng.uniform(0.4, 1.0) - out * s * 0.01
        pts.append((ex + radial * math.cos(ang) - along * math.sin(ang),
                    ey + radial * math.sin(ang) + along * math.cos(ang)))
    m = _canvas(s)
    ImageDraw.Draw(m).polygon(pts, fill=255)
    alpha = _alpha(m) * (rng.uniform(0.45, 0.6) if subtle else rng.uniform(0.85, 1.0))
    tex = 1 + 0.1 * rng.normal(0, 1, (s, s)).astype(np.float32)
    color = base * rng.uniform(1.1, 1.45) * tex[..., None]
    return np.clip(alpha, 0, 1), np.clip(color, 0, 255), True


def _scratch(rng, size, disc, base, subtle):
    s = size
    x0, y0 = disc.random_point(rng, 0.2, 0.9)
    length = s * rng.uniform(0.25, 0.5) * (0.5 if subtle else 1)
    ang = rng.uniform(0, 2 * math.pi)
    bend = rng.normal(0, 0.3) * length
    x2, y2 = x0 + length * math.cos(ang), y0 + length * math.sin(ang)
    mx, my = (x0 + x2) / 2 - bend * math.sin(ang), (y0 + y2) / 2 + bend * math.cos(ang)
    t = np.linspace(0, 1, 40)[:, None]
    pts = (1 - t) ** 2 * np.array([x0, y0]) + 2 * (1 - t) * t * np.array([mx, my]) + t ** 2 * np.array([x2, y2])
    m = _canvas(s)
    ImageDraw.Draw(m).line([tuple(p) for p in pts], fill=255, width=1 if subtle else max(2, int(round(s * rng.uniform(0.008, 0.015)))),
                           joint="curve")
    bright = rng.random() < 0.6
    color = np.broadcast_to(np.clip(base * (1.6 if bright else 0.35), 0, 255), (s, s, 3))
    alpha = _alpha(m) * (rng.uniform(0.35, 0.5) if subtle else rng.uniform(0.8, 1.0))
    return alpha, color, False


_CASTING_DEFECTS = {"blowhole": _blowhole, "burr": _burr, "scratch": _scratch}


def _render_casting(rng, size, defect, seed):
    img, body, disc, base = _casting_base(rng, size, _casting_design(seed))
    if defect is None:
        return img, None
    subtle = rng.random() < SUBTLE_FRACTION
    for _ in range(10):
        alpha, color, may_leave_part = _CASTING_DEFECTS[defect](rng, size, disc, base, subtle)
        if not may_leave_part:
            alpha = alpha * (body > 0.5)
        if (alpha >= _MIN_ALPHA).sum() >= 3:  # a pit that fell into a bolt hole is redrawn
            break
    return img, (alpha, color)
