"""Hazelnut-like parts (a textured nut on a plain background) and their crack, cut, hole and print defects."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trainer.data.synth.draw import _MIN_ALPHA, SUBTLE_FRACTION, _alpha, _blur, _canvas, _pit_layers, _smooth_noise


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
