"""Each exported variant decides with a threshold measured on its own scores.

int8 moves scores by up to a few hundredths; a threshold chosen on float scores
and copied into the int8 file then decides differently from the float model
(bottle good images pushed over it, castings' defects under it). The variant's
own threshold is the float decision point moved by the variant's systematic
shift, measured in logit space on the calibration images whose float scores lie
nearest the threshold (val images first: they are out-of-sample like the line's
parts). Verdict agreement on the test split stays the gate.
"""
from __future__ import annotations

import numpy as np

NEAREST = 32


def _logit(p, eps):
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


def nearest_indices(ref_scores, threshold=0.5, output_step=1 / 256):
    """Indices of the (at most ``NEAREST``) images whose float scores lie nearest ``threshold`` in logit
    space: the only ones :func:`variant_threshold` reads, so a variant need only be run on these."""
    ref = np.asarray(ref_scores, np.float64).ravel()
    eps = max(output_step / 2, 1e-6)
    return np.argsort(np.abs(_logit(ref, eps) - float(_logit(threshold, eps))), kind="stable")[:NEAREST]


def variant_threshold(ref_scores, got_scores, threshold=0.5, output_step=1 / 256):
    """(threshold in the variant's output space, info) deciding like ``ref >= threshold``."""
    ref = np.asarray(ref_scores, np.float64).ravel()
    got = np.asarray(got_scores, np.float64).ravel()
    if len(ref) == 0:
        return float(threshold), {"shift_logit": 0.0, "n": 0}
    eps = max(output_step / 2, 1e-6)
    lr, lg = _logit(ref, eps), _logit(got, eps)
    t = float(_logit(threshold, eps))
    near = nearest_indices(ref, threshold, output_step)
    shift = float(np.median(lg[near] - lr[near]))
    out = float(1 / (1 + np.exp(-(t + shift))))
    # Never cross the float threshold by more than the shift measured: a variant threshold of 0 or 1
    # would accept or reject everything.
    out = float(np.clip(out, output_step, 1 - output_step))
    return out, {"shift_logit": shift, "n": int(len(near)), "float_threshold": float(threshold),
                 "median_abs_logit_diff": float(np.median(np.abs(lg - lr)))}
