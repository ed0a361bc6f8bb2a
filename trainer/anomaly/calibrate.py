"""Decision thresholds from good images only, for a stated false-reject target.

A plant states the share of good parts it accepts rejecting (``max_false_reject``,
default 1%). Twenty validation images cannot place a 1% quantile, so every
training image gets an *out-of-fold* score (the bank and the Gaussian are
built without its fold, ``trainer.anomaly.fit``), and the threshold is the
``1 - target`` quantile of those scores together with the held-out val good
images. Out-of-fold banks hold fewer images than the deployed one, so these
scores run slightly high: the realised rate errs on the safe side.

Two kinds of evidence are combined on one scale: each is centred on its
out-of-fold good median and divided by its good spread (the target quantile - median); the
larger of the two decides, and the threshold of that maximum is chosen for the
target. The graph computes ``sigmoid(gain * (max - threshold))``, so 0.5 is
the decision.
"""
from __future__ import annotations

import numpy as np

def normaliser(good, target):
    """(median, spread) of good scores: evidence = (raw - median) / spread is 1 at the ``1 - target``
    quantile, so each kind of evidence alone would reject about ``target`` of good parts at 1."""
    g = np.asarray(good, np.float64)
    med = float(np.median(g))
    spread = float(np.quantile(g, 1.0 - target) - med)
    return med, max(spread, 1e-6 * max(abs(med), 1.0))


def clopper_pearson(k, n, level=0.95):
    """Exact binomial confidence interval of k successes in n."""
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return [lo, hi]


def threshold_for_target(good, target):
    """(threshold, info): ``good >= threshold`` for about ``target`` of out-of-sample good scores."""
    g = np.asarray(good, np.float64)
    n = len(g)
    if n == 0:
        raise ValueError("no out-of-sample good score to calibrate on")
    thr = float(np.quantile(g, 1.0 - target))
    k = int(np.sum(g >= thr))
    # The smallest rate N good images can vouch for: with none rejected, the 95% upper bound is
    # 1 - 0.05^(1/N) (about 3/N, the rule of three).
    verifiable = float(1.0 - 0.05 ** (1.0 / n))
    info = {"max_false_reject": float(target), "n_good": n, "threshold": thr,
            "expected_false_reject": k / n, "expected_false_reject_ci95": clopper_pearson(k, n),
            "smallest_verifiable_rate": verifiable}
    if target < verifiable:
        info["warning"] = (f"{n} out-of-sample good images cannot verify a false-reject rate of {target:.3g}; "
                           f"the smallest they can vouch for is {verifiable:.3g} (add good images)")
    return thr, info


def scorer_params(bank, patch_good, target, span=5.0, gain=2.0, global_good=None, gauss=None,
                  evidence="patch+global"):
    """Everything ``model.build_scorer`` bakes in, plus the calibration record.

    ``patch_good``/``global_good``: out-of-sample raw scores of good images (worst-patch distance,
    squared Mahalanobis distance); ``gauss`` = (mu, w) from ``gaussian.fit_gaussian``. ``evidence``: which
    of the two decide the image ("patch" or "global" alone are ablations; the map is always the patches').
    """
    use_patch = gauss is None or "patch" in evidence
    use_global = gauss is not None and "global" in evidence
    t_patch, patch_info = threshold_for_target(patch_good, target)   # the map's own 0.5
    s = max((1.0 - t_patch) / span, 1e-3)
    med_p, spr_p = normaliser(patch_good, target)
    u_p = (np.asarray(patch_good, np.float64) - med_p) / spr_p
    combined = u_p if use_patch else None
    # the bank conv's clamp: distances up to 6 * unit are resolved (2x the map threshold, at least 0.05)
    unit = max(2.0 * t_patch, 0.05) / 6.0
    params = {"bank": bank, "t": t_patch, "s": s, "unit": unit}
    cal = {"patch": {"median": med_p, "spread": spr_p, "map_threshold": t_patch, "map_scale": s,
                     "alone": patch_info}, "gain": gain, "span": span}
    if gauss is not None:
        med_g, spr_g = normaliser(global_good, target)
        u_g = (np.asarray(global_good, np.float64) - med_g) / spr_g
        if use_global:
            combined = u_g if combined is None else np.maximum(combined, u_g)
        cal["global"] = {"median": med_g, "spread": spr_g,
                         "alone": threshold_for_target(global_good, target)[1]}
    c_star, info = threshold_for_target(combined, target)
    # max clamped d / unit -> logit gain * ((d - med) / spread - c*); max() commutes with the shift.
    if use_patch:
        params["patch"] = (gain * unit / spr_p, -gain * (med_p / spr_p + c_star))
    if use_global:
        params.update(mu=gauss[0], w=gauss[1], **{"global": (gain / spr_g, -gain * (med_g / spr_g + c_star))})
    cal.update(info, combined_threshold=c_star, evidence="+".join(n for n, on in (("patch", use_patch),
                                                                                   ("global", use_global)) if on))
    return params, cal
