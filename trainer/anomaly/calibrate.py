"""Decision threshold from good images only.

A plant rarely has defect photos at training time, so the threshold comes
from held-out *good* images: a high quantile of their raw scores, pushed
``margin`` times further from the median (headroom for good parts the val
split did not show). The sigmoid's width is tied to the same spread so good
scores stay well inside (0, 0.5) and defects spread over (0.5, 1), which keeps
int8's 1/256 output steps meaningful.
"""
from __future__ import annotations

import numpy as np


def good_only_threshold(raw_good, quantile=0.99, margin=1.1, width=1.0):
    """(t, s, info): raw >= t is defective; outputs are sigmoid((raw - t) / s)."""
    r = np.asarray(raw_good, dtype=np.float64).ravel()
    if len(r) == 0:
        raise ValueError("no good validation image to calibrate on")
    med = float(np.median(r))
    q = float(np.quantile(r, quantile))
    spread = max(q - med, 1e-3 * max(abs(med), 1e-3), 1e-6)
    t = med + margin * spread
    s = max(width * (t - med), 1e-6)
    info = {"median": med, "quantile": quantile, "quantile_value": q, "margin": margin, "width": width,
            "raw_threshold": t, "raw_scale": s, "n_good": int(len(r)),
            "val_false_alarm_rate": float(np.mean(r >= t))}
    if len(r) < 20:
        info["warning"] = (f"only {len(r)} good validation images: the {quantile:.2f} quantile is "
                           "an extrapolation; add good images or raise val_fraction")
    return t, s, info
