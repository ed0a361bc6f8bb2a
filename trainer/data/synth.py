"""Synthetic inspection datasets in MVTec AD layout (hazelnut-like nuts, casting-like discs).

Real defect photos are scarce and cannot ship with the repository, so tests,
the demo and benchmarks use parts drawn here. Layout written by :func:`generate`::

    out/train/good/000.png ...
    out/test/good/000.png ...
    out/test/<defect>/000.png ...
    out/ground_truth/<defect>/000_mask.png      (0/255, exactly the changed pixels)
    out/synth.json                              (the parameters, for provenance)

Every image draws from its own ``SeedSequence([seed, kind, subset, class, index])``,
so files are byte-identical for a seed, any subset can be regenerated alone and
images can be drawn in parallel. Parts vary in pose, scale, colour and lighting
far more than a defect changes the whole-image mean, so global colour cannot give
the class away; most defects are clear local structures, about 15% are subtle.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFECTS = {"hazelnut": ["crack", "cut", "hole", "print"], "casting": ["blowhole", "burr", "scratch"]}
KINDS = tuple(DEFECTS)
SUBTLE_FRACTION = 0.15
_MIN_ALPHA = 0.04  # weaker blending is invisible after rounding to uint8; kept out of the mask
_KIND_ID = {"hazelnut": 1, "casting": 2}
_SUBSET_ID = {"train": 0, "test": 1}


# ---------------------------------------------------------------- noise helpers
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


# ---------------------------------------------------------------- hazelnut
class _Nut:
    """Pose and shape of one nut; maps between pixel and nut coordinates."""

    def __init__(self, rng, size):
        s = size
        self.size = s
        self.cx = s / 2 + rng.uniform(-0.07, 0.07) * s
        self.cy = s / 2 + rng.uniform(-0.07, 0.07) * s
        self.r = s * rng.uniform(0.29, 0.37)          # half length along the tip axis
        self.rw = self.r * rng.uniform(0.80, 0.95)    # half width
        self.theta = rng.uniform(0, 2 * math.pi)
        self.m = rng.uniform(0.5, 0.9)                # tip pointiness
        v = np.linspace(-1, 1, 401)
        self.norm = float(np.max(self._raw_hw(v)))

    def _raw_hw(self, v):
        v = np.clip(v, -1, 1)
        return np.sqrt(1 - v * v) * ((1 - v) / 2) ** (self.m / 2)

    def hw(self, v):
        return self._raw_hw(v) / self.norm

    def uv(self, xx, yy):
        c, s = math.cos(self.theta), math.sin(self.theta)
        dx, dy = xx - self.cx, yy - self.cy
        return (dx * c + dy * s) / self.rw, (-dx * s + dy * c) / self.r

    def to_px(self, u, v):
        c, s = math.cos(self.theta), math.sin(self.theta)
        du, dv = u * self.rw, v * self.r
        return self.cx + du * c - dv * s, self.cy + du * s + dv * c

    def random_point(self, rng, margin=0.7):
        """A pixel well inside the nut (``margin`` < 1 keeps away from the outline)."""
        for _ in range(100):
            v = rng.uniform(-0.85, 0.85) * margin + rng.uniform(-0.1, 0.1)
            u = rng.uniform(-1, 1) * self.hw(v) * margin
            if abs(u) < self.hw(v) * margin:
                return self.to_px(u, v)
        return self.cx, self.cy


def _hazelnut_base(rng, size):
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    nut = _Nut(rng, s)
    u, v = nut.uv(xx, yy)
    hw = nut.hw(v).astype(np.float32)
    # Soft outline: horizontal distance to the boundary in pixels.
    dist = (np.abs(u) - hw) * nut.rw
    dist = np.where(np.abs(v) >= 1, np.maximum(dist, (np.abs(v) - 1) * nut.r), dist)
    a = np.clip(0.5 - dist, 0, 1)

    # Background: dark, noisy, slightly uneven, with the nut's soft shadow.
    bg_level = rng.uniform(14, 42)
    tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    bg = bg_level * (1 + 0.25 * _smooth_noise(rng, s, 4))
    bg = bg[..., None] * tint + rng.normal(0, rng.uniform(2, 5), (s, s, 3)).astype(np.float32)
    shadow = _blur(a, s * 0.04)
    sh_dx, sh_dy = (rng.uniform(-0.03, 0.03, 2) * s).astype(int)
    shadow = np.roll(shadow, (sh_dy, sh_dx), axis=(0, 1))
    bg = bg * (1 - 0.5 * shadow[..., None])

    # Nut body: pseudo-3D shading, longitudinal grain, mottling, a rough light base.
    rho2 = np.clip((u / np.maximum(hw, 1e-3)) ** 2 * (1 - v * v) + v * v, 0, 1)
    h = np.sqrt(1 - rho2)
    nu = u / np.maximum(hw, 1e-3) * np.sqrt(np.maximum(1 - v * v, 0))
    lt = rng.normal(0, 1, 3)
    lt[2] = abs(lt[2]) + 1.2
    lt /= np.linalg.norm(lt)
    lambert = np.clip(nu * lt[0] + v * lt[1] + h * lt[2], 0, 1)
    ambient = rng.uniform(0.35, 0.5)
    shade = ambient + (1 - ambient) * lambert
    spec = lambert ** rng.uniform(18, 40) * rng.uniform(0.1, 0.35)

    base = np.array([rng.uniform(125, 170), rng.uniform(78, 105), rng.uniform(38, 62)], np.float32)
    base *= rng.uniform(0.8, 1.15)
    across = np.clip(u / np.maximum(hw, 1e-3), -1.5, 1.5)
    grain_f = rng.uniform(5, 10)
    wobble = _smooth_noise(rng, s, 6) * 0.6
    grain = np.sin(2 * math.pi * grain_f * (across * 0.5 + 0.5) + wobble) * rng.uniform(0.04, 0.09)
    mottle = _smooth_noise(rng, s, 12) * rng.uniform(0.05, 0.1)
    fine = rng.normal(0, 0.035, (s, s)).astype(np.float32)
    tex = 1 + grain + mottle + fine
    body = base * (shade * tex)[..., None]
    # Hilum: the rough, paler base opposite the tip.
    cut_v = -0.72 + 0.06 * _smooth_noise(rng, s, 8)
    hilum = np.clip((cut_v - v) * 12, 0, 1)
    hilum_col = np.array([rng.uniform(150, 185), rng.uniform(125, 150), rng.uniform(90, 115)], np.float32)
    hil_tex = 1 + rng.normal(0, 0.08, (s, s)).astype(np.float32) + 0.1 * _smooth_noise(rng, s, 24)
    body = body * (1 - hilum[..., None]) + (hilum_col * (shade * hil_tex)[..., None]) * hilum[..., None]
    body = body + (255 * spec)[..., None]
    img = bg * (1 - a[..., None]) + body * a[..., None]
    return img, a, nut, base


def _random_walk(rng, x, y, angle, length, step, jitter):
    pts = [(x, y)]
    n = max(2, int(length / step))
    for _ in range(n):
        angle += rng.normal(0, jitter)
        x += step * math.cos(angle)
        y += step * math.sin(angle)
        pts.append((x, y))
    return pts


def _crack(rng, size, nut, base, subtle):
    s = size
    x, y = nut.random_point(rng, 0.6)
    length = s * rng.uniform(0.22, 0.42) * (0.5 if subtle else 1)
    main_w = 1 if subtle else max(2, int(round(s * rng.uniform(0.008, 0.016))))
    angle = rng.uniform(0, 2 * math.pi)
    m = _canvas(s)
    d = ImageDraw.Draw(m)
    # Cracks grow both ways from where they start.
    for direction in (0, math.pi):
        pts = _random_walk(rng, x, y, angle + direction, length / 2, s * 0.012, 0.45)
        d.line(pts, fill=255, width=main_w, joint="curve")
        for _ in range(int(rng.integers(0, 3))):
            bx, by = pts[int(rng.integers(1, len(pts)))]
            br = _random_walk(rng, bx, by, angle + direction + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2),
                              length * rng.uniform(0.1, 0.3), s * 0.01, 0.5)
            d.line(br, fill=255, width=max(1, main_w - 1), joint="curve")
    alpha = _alpha(m) * (rng.uniform(0.3, 0.5) if subtle else rng.uniform(0.8, 0.95))
    color = np.full((s, s, 3), (28, 17, 10), np.float32) * rng.uniform(0.6, 1.2)
    return alpha, color


def _lens(cx, cy, angle, length, width, n=16):
    """An elongated pointed shape (a gash), as polygon points."""
    pts = []
    c, s_ = math.cos(angle), math.sin(angle)
    for i in range(2 * n):
        t = -1 + 2 * (i % n) / (n - 1)
        side = 1 if i < n else -1
        if side < 0:
            t = -t
        along = t * length / 2
        across = side * (width / 2) * (1 - t * t) ** 0.7
        pts.append((cx + along * c - across * s_, cy + along * s_ + across * c))
    return pts


def _cut(rng, size, nut, base, subtle):
    s = size
    x, y = nut.random_point(rng, 0.7)
    length = s * rng.uniform(0.14, 0.28) * (0.5 if subtle else 1)
    width = s * rng.uniform(0.035, 0.07) * (0.5 if subtle else 1)
    angle = rng.uniform(0, 2 * math.pi)
    pts = _lens(x, y, angle, length, width)
    fill, edge = _canvas(s), _canvas(s)
    ImageDraw.Draw(fill).polygon(pts, fill=255)
    ImageDraw.Draw(edge).polygon(pts, outline=255, width=1 if subtle else 2)
    f, e = _alpha(fill), _alpha(edge)
    # Exposed kernel: pale cream, a little streaky; the cut walls are dark.
    kernel = np.array([rng.uniform(205, 235), rng.uniform(180, 205), rng.uniform(130, 160)], np.float32)
    streak = 1 + 0.08 * np.random.default_rng(rng.integers(1 << 31)).normal(0, 1, (s, s)).astype(np.float32)
    color = kernel * streak[..., None]
    color = color * (1 - e[..., None]) + np.array([35, 22, 14], np.float32) * e[..., None]
    alpha = np.maximum(f, e) * (rng.uniform(0.35, 0.55) if subtle else rng.uniform(0.85, 1.0))
    return alpha, color


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


def _hole(rng, size, nut, base, subtle):
    s = size
    x, y = nut.random_point(rng, 0.65)
    radius = max(1.5, s * rng.uniform(0.035, 0.065) * (0.5 if subtle else 1))
    alpha, color = _pit_layers(rng, s, x, y, radius, rng.uniform(0.7, 1.0), rng.uniform(0, math.pi),
                               dark=(22, 13, 8), rim_col=base * rng.uniform(1.15, 1.35), rim_w=rng.uniform(0.25, 0.45))
    alpha *= rng.uniform(0.35, 0.55) if subtle else rng.uniform(0.85, 1.0)
    return alpha, color


_INKS = [(30, 60, 200), (200, 30, 30), (12, 12, 12), (235, 235, 230), (25, 140, 60), (130, 40, 160)]
_GLYPHS = "ABCDEFGHKLMNPRSTUVXZ0123456789#+*"


def _print(rng, size, nut, base, subtle):
    s = size
    x, y = nut.random_point(rng, 0.55)
    ink = np.array(_INKS[int(rng.integers(len(_INKS)))], np.float32)
    patch_size = int(s * 0.5)
    patch = Image.new("L", (patch_size, patch_size), 0)
    d = ImageDraw.Draw(patch)
    if rng.random() < 0.5:
        text = "".join(rng.choice(list(_GLYPHS), int(rng.integers(1, 4))))
        font = ImageFont.load_default(size=max(8, int(s * rng.uniform(0.11, 0.18) * (0.6 if subtle else 1))))
        d.text((patch_size / 2, patch_size / 2), text, fill=255, font=font, anchor="mm",
               stroke_width=0 if subtle else int(rng.integers(0, 2)), stroke_fill=255)
    else:
        for _ in range(int(rng.integers(1, 4))):
            pts = _random_walk(rng, patch_size / 2 + rng.normal(0, s * 0.03), patch_size / 2 + rng.normal(0, s * 0.03),
                               rng.uniform(0, 2 * math.pi), s * rng.uniform(0.08, 0.18), s * 0.012, 0.35)
            d.line(pts, fill=255, width=1 if subtle else max(2, int(round(s * rng.uniform(0.01, 0.018)))), joint="curve")
    patch = patch.rotate(rng.uniform(0, 360), resample=Image.BILINEAR)
    m = _canvas(s)
    m.paste(patch, (int(x - patch_size / 2), int(y - patch_size / 2)))
    alpha = _alpha(m) * (rng.uniform(0.3, 0.5) if subtle else rng.uniform(0.75, 0.95))
    return alpha, np.broadcast_to(ink, (s, s, 3))


_HAZELNUT_DEFECTS = {"crack": _crack, "cut": _cut, "hole": _hole, "print": _print}


def _render_hazelnut(rng, size, defect, seed):
    img, body, nut, base = _hazelnut_base(rng, size)
    if defect is None:
        return img, None
    subtle = rng.random() < SUBTLE_FRACTION
    for _ in range(10):
        alpha, color = _HAZELNUT_DEFECTS[defect](rng, size, nut, base, subtle)
        # Defects sit on the nut; the mask is exactly where pixels change.
        alpha = alpha * (body > 0.5)
        if (alpha >= _MIN_ALPHA).sum() >= 3:
            break
    return img, (alpha, color)


# ---------------------------------------------------------------- casting
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


_RENDER = {"hazelnut": _render_hazelnut, "casting": _render_casting}


# ---------------------------------------------------------------- public API
def render(kind="hazelnut", defect=None, size=256, seed=0, subset="test", index=0, return_clean=False):
    """One image as (HxWx3 uint8, mask HxW uint8 0/255 or None for a good part).

    ``(kind, subset, defect, index, seed)`` fully determine the result. With
    ``return_clean`` a third item is the same part before the defect was drawn
    (so tests can check the mask covers exactly the changed pixels).
    """
    if kind not in DEFECTS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if defect is not None and defect not in DEFECTS[kind]:
        raise ValueError(f"unknown {kind} defect {defect!r}; choose one of {', '.join(DEFECTS[kind])}")
    size = int(size)
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    cls = 0 if defect is None else 1 + DEFECTS[kind].index(defect)
    ss = np.random.SeedSequence([int(seed), _KIND_ID[kind], _SUBSET_ID[subset], cls, int(index)])
    rng = np.random.default_rng(ss)
    img, layer = _RENDER[kind](rng, size, defect, seed)
    mask = None
    layer_base = img
    if layer is not None:
        alpha, color = layer
        # Quantise alpha so the mask is exactly the set of pixels the defect touched.
        alpha = np.where(alpha >= _MIN_ALPHA, alpha, 0).astype(np.float32)
        img = img * (1 - alpha[..., None]) + color * alpha[..., None]
        mask = np.where(alpha > 0, 255, 0).astype(np.uint8)
        if not mask.any():  # degenerate draw (never expected); keep the file honest
            raise RuntimeError(f"empty defect mask for {kind}/{defect} index {index} seed {seed}")
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if return_clean:
        clean = out if layer is None else np.clip(np.rint(layer_base), 0, 255).astype(np.uint8)
        return out, mask, clean
    return out, mask


def _jobs(kind, n_train, n_test_good, n_per_defect):
    jobs = [("train", None, i) for i in range(n_train)]
    jobs += [("test", None, i) for i in range(n_test_good)]
    for d in DEFECTS[kind]:
        jobs += [("test", d, i) for i in range(n_per_defect)]
    return jobs


def _name(i, n):
    return f"{i:0{max(3, len(str(max(n - 1, 0))))}d}"


def _write_one(args):
    out, kind, size, seed, subset, defect, index, n = args
    img, mask = render(kind, defect, size, seed, subset, index)
    folder = defect or "good"
    stem = _name(index, n)
    path = Path(out) / subset / folder / f"{stem}.png"
    # Level 1: noisy synthetic images barely compress better at 6, which takes 3x longer.
    Image.fromarray(img, "RGB").save(path, compress_level=1)
    if mask is not None:
        Image.fromarray(mask, "L").save(Path(out) / "ground_truth" / folder / f"{stem}_mask.png", compress_level=1)
    return str(path)


def generate(out, kind="hazelnut", size=256, n_train=391, n_test_good=40, n_per_defect=17, seed=0,
             progress=True, workers=1) -> Path:
    """Write a synthetic MVTec-AD-layout dataset to ``out`` and return its path.

    ``workers`` > 1 draws images in that many processes; the files are the same.
    """
    if kind not in DEFECTS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    for name, n in (("n_train", n_train), ("n_test_good", n_test_good), ("n_per_defect", n_per_defect)):
        if int(n) < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")
    out = Path(out)
    folders = [out / "train" / "good", out / "test" / "good"]
    folders += [out / "test" / d for d in DEFECTS[kind]] + [out / "ground_truth" / d for d in DEFECTS[kind]]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    counts = {("train", None): n_train, ("test", None): n_test_good}
    jobs = [(str(out), kind, size, seed, subset, d, i, counts.get((subset, d), n_per_defect))
            for subset, d, i in _jobs(kind, n_train, n_test_good, n_per_defect)]
    from edge.progress import as_progress

    total = len(jobs)
    workers = max(1, int(workers or 1))
    with as_progress(progress).bar(total, f"synth {kind} images") as step:
        if workers == 1 or total < 2 * workers:
            for job in jobs:
                _write_one(job)
                step()
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_write_one, jobs, chunksize=8):
                    step()
    from edge.atomic import atomic_write_json

    atomic_write_json(out / "synth.json", {
        "kind": kind, "size": int(size), "seed": int(seed), "n_train": int(n_train), "n_test_good": int(n_test_good),
        "n_per_defect": int(n_per_defect), "defects": DEFECTS[kind], "subtle_fraction": SUBTLE_FRACTION,
        "generator": "trainer.data.synth",
    })
    return out


def default_workers():
    return max(1, min(4, os.cpu_count() or 1))


__all__ = ["DEFECTS", "KINDS", "generate", "render", "default_workers"]
