"""Pixel-level anomaly metrics where defect masks exist: pixel AUROC and AUPRO (the MVTec AD metrics).

Image AUROC says whether a part is flagged; these say whether the *map* points at the defect. Both
are computed at the model's input resolution: masks are stretched to it with NEAREST exactly as the
images are stretched (``edge.preprocess``), and each anomaly map is upsampled to it bilinearly.

AUPRO (Bergmann et al., MVTec AD): for thresholds spanning false-positive rates 0..``max_fpr`` on
the pixels of good regions, the per-region overlap (share of each connected defect region's pixels
above the threshold) is averaged over regions, so a large defect does not outweigh ten small ones;
the area under that curve is divided by ``max_fpr`` (1.0 = every region fully covered before any
false positive).
"""
from __future__ import annotations

import numpy as np

from trainer.metrics import auroc

MAX_FPR = 0.3  # the MVTec AD convention


def load_mask(path, hw):
    """Binary (h, w) bool mask of ``path`` stretched to ``hw`` like the images; a clear error if unreadable."""
    from PIL import Image

    from edge.errors import ImageError

    try:
        with Image.open(path) as im:
            m = im.convert("L").resize((hw[1], hw[0]), Image.NEAREST)
    except (OSError, ValueError) as exc:
        raise ImageError(str(path), f"unreadable defect mask ({exc})",
                         "replace it with a binary PNG (0 = good, 255 = defect) or delete it") from None
    return np.asarray(m) > 127


def upsample(maps, hw):
    """(N, h, w) maps -> (N, H, W) by bilinear interpolation (half-pixel centres, edges clamped)."""
    maps = np.asarray(maps, np.float32)
    n, h, w = maps.shape

    def axis(src, dst):
        pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, fy = axis(h, hw[0])
    x0, x1, fx = axis(w, hw[1])
    rows = maps[:, y0] * (1 - fy)[None, :, None] + maps[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :] + rows[:, :, x1] * fx[None, None, :]


def aupro(maps, masks, max_fpr=MAX_FPR, steps=300):
    """Normalised area under the per-region-overlap curve up to ``max_fpr``; NaN without defect regions."""
    from scipy import ndimage

    maps = np.asarray(maps, np.float32)
    masks = np.asarray(masks, bool)
    neg = np.sort(maps[~masks])
    regions = []
    for m, s in zip(masks, maps):
        labels, n = ndimage.label(m)
        for r in range(1, n + 1):
            regions.append(np.sort(s[labels == r]))
    if not regions or not len(neg):
        return float("nan")
    # candidate thresholds: good-pixel scores at false-positive rates 0..max_fpr, then each one's *real*
    # rate (ties: many pixels at one score jump the rate past the grid point) and overlap
    grid = np.linspace(0.0, max_fpr, steps + 1)[1:]
    idx = np.clip(np.ceil((1.0 - grid) * len(neg)).astype(int), 0, len(neg) - 1)
    u = np.unique(np.append(neg[idx], neg[-1]))
    thr = np.concatenate([[np.inf], u, np.nextafter(u, np.inf), [-np.inf]])  # ">= v" and "> v" for each v
    fpr = 1.0 - np.searchsorted(neg, thr, side="left") / len(neg)
    pro = np.zeros(len(thr))
    for reg in regions:
        pro += 1.0 - np.searchsorted(reg, thr, side="left") / len(reg)
    pro /= len(regions)
    order = np.lexsort((pro, fpr))
    fpr, pro = fpr[order], pro[order]
    inside = fpr <= max_fpr
    j = int(inside.sum())  # first point past max_fpr (the -inf threshold guarantees one)
    f0, p0, f1, p1 = fpr[j - 1], pro[j - 1], fpr[j], pro[j]
    p_end = p0 + (p1 - p0) * (max_fpr - f0) / (f1 - f0) if f1 > f0 else p1
    xs, ys = np.append(fpr[inside], max_fpr), np.append(pro[inside], p_end)
    return float(np.trapezoid(ys, xs) / max_fpr)


def pixel_report(maps, files, root, hw):
    """{"pixel_auroc", "aupro", "images", "masked"} for test ``files`` (manifest entries, ``mask`` relative
    to ``root`` on defective ones) and their (N, h, w) maps; None when no file has a mask.

    Defective images without a mask are left out (their defect pixels are unknown); good images count
    as all-good pixels."""
    from pathlib import Path

    keep = [i for i, f in enumerate(files) if f.get("mask") or int(f["label"]) == 0]
    if not any(files[i].get("mask") for i in keep):
        return None
    masks = np.stack([load_mask(Path(root) / files[i]["mask"], hw) if files[i].get("mask")
                      else np.zeros(hw, bool) for i in keep])
    up = upsample(np.asarray(maps)[keep], hw)
    return {"pixel_auroc": auroc(masks.ravel(), up.ravel()), "aupro": aupro(up, masks),
            "images": len(keep), "masked": int(sum(1 for i in keep if files[i].get("mask"))),
            "resolution": list(hw), "max_fpr": MAX_FPR}


def format_pixel(rep) -> str:
    return (f"pixel-level ({rep['masked']} masked defects + good images, at {rep['resolution'][0]}x"
            f"{rep['resolution'][1]}): pixel AUROC {rep['pixel_auroc']:.3f}, AUPRO@{rep['max_fpr']:g} {rep['aupro']:.3f}")
