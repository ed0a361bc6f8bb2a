"""``TrainConfig.anomaly`` for ``--mode anomaly``: defaults, documentation and checks.

Keys (all optional)::

    taps         ["block_5_add", "block_12_add"]  MobileNetV2 layers whose outputs are the patch
                 features (first = the map grid; stride 8 and 16 at any input size)
    tap_norm     true   L2-normalise each tap before the concat (equal weight per depth)
    pool         3      local average window over the feature grid (1 = off)
    bank_size    2048   memory-bank rows kept by the greedy coreset (int8: bank_size * D bytes)
    proj_dim     128    random-projection width used while choosing the coreset
    global_tap   "block_6_expand_relu"  layer whose pooled statistics feed the image-level Gaussian
                 (Mahalanobis) evidence; "" turns it off (patch evidence only)
    probe_tap    "block_13_expand_relu"  combined mode only: layer whose pooled mean feeds the supervised
                 probe that learns from the few labelled defects (trainer/anomaly/stack.py)
    paint_defects 0     combined mode only: synthetic defects painted on good images (trainer/defect_paint.py)
                        added to the probe's training rows; 0 = off (it measured worse on real parts)
    global_levels true  scale the loud pooled channels of global_tap down to the median channel's level
                        before the MEAN (model.levels_for), so one int8 range fits every channel;
                        with global_moments 1 only
    global_moments 1    pooled moments of global_tap: 1 = per-channel mean, 2 = + mean of squares (int8
                        squares of small activations round to 0: castings' int8 evidence error doubled)
    evidence     "patch+global"  what decides the image: "patch+global" (the stronger of the two),
                 "patch" (nearest-patch distance only) or "global" (the Gaussian only; needs global_tap)
    max_false_reject 0.01  share of good parts the user accepts rejecting; the threshold is the
                 1 - target quantile of out-of-fold good scores (trainer/anomaly/calibrate.py)
    folds        5      out-of-fold scoring: the bank and Gaussian are refitted without each fold
    span         5.0    map sigmoid scale s = (1 - t) / span: raw distance 1 -> sigmoid(span);
                        keeps defect scores apart in int8 (1/256 output steps) instead of all at 1
    gain         2.0    score = sigmoid(gain * (evidence - threshold)), evidence in good-spread units
    batch_size   16     images per feature-extraction batch
    save_maps    false  write anomaly-map overlays for a sample of test images to run_dir/maps/
    max_maps     24     how many overlays at most (spread over the test types)
"""
from __future__ import annotations

from trainer.config import ConfigError

EVIDENCE = ("patch+global", "patch", "global")
DEFAULTS = {
    "taps": ["block_5_add", "block_12_add"],
    "pool": 3,
    "tap_norm": True,
    "bank_size": 2048,
    "proj_dim": 128,
    "global_tap": "block_6_expand_relu",
    "probe_tap": "block_13_expand_relu",
    "paint_defects": 0,
    "global_moments": 1,
    "global_levels": True,
    "evidence": "patch+global",
    "max_false_reject": 0.01,
    "folds": 5,
    "span": 5.0,
    "gain": 2.0,
    "batch_size": 16,
    "save_maps": False,
    "max_maps": 24,
}


def anomaly_settings(raw) -> dict:
    """Defaults merged with ``cfg.anomaly``; unknown keys and bad values are one-line errors."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"config: anomaly has unknown keys {unknown}; known: {', '.join(sorted(DEFAULTS))}")
    s = {**DEFAULTS, **raw}

    def bad(key, why):
        raise ConfigError(f"config: anomaly.{key}={s[key]!r} {why}")

    if isinstance(s["taps"], str):
        s["taps"] = [t.strip() for t in s["taps"].split(",") if t.strip()]
    if not s["taps"] or not all(isinstance(t, str) for t in s["taps"]):
        bad("taps", "must be a list of MobileNetV2 layer names")
    if not isinstance(s["global_tap"], str):
        bad("global_tap", "must be a MobileNetV2 layer name or \"\" (off)")
    if not isinstance(s["probe_tap"], str) or not s["probe_tap"]:
        bad("probe_tap", "must be a MobileNetV2 layer name (combined mode's probe)")
    if s["global_moments"] > 2:
        bad("global_moments", "must be 1 (mean) or 2 (mean and mean of squares)")
    if s["evidence"] not in EVIDENCE:
        bad("evidence", f"must be one of {', '.join(EVIDENCE)}")
    if "global" in s["evidence"] and not s["global_tap"]:
        bad("evidence", "needs anomaly.global_tap (a MobileNetV2 layer) for the global evidence")
    for key, lo in (("pool", 1), ("bank_size", 1), ("proj_dim", 0), ("batch_size", 1), ("max_maps", 0),
                    ("folds", 2), ("global_moments", 1), ("paint_defects", 0)):
        try:
            s[key] = int(s[key])
        except (TypeError, ValueError):
            bad(key, "is not an integer")
        if s[key] < lo:
            bad(key, f"must be >= {lo}")
    for key in ("max_false_reject", "span", "gain"):
        try:
            s[key] = float(s[key])
        except (TypeError, ValueError):
            bad(key, "is not a number")
    if not 0.0 < s["max_false_reject"] < 0.5:
        bad("max_false_reject", "must be in (0, 0.5): the share of good parts you accept rejecting, e.g. 0.01")
    for key in ("span", "gain"):
        if not s[key] > 0 or s[key] != s[key] or s[key] == float("inf"):
            bad(key, "must be a finite number > 0")
    s["save_maps"] = bool(s["save_maps"])
    s["tap_norm"] = bool(s["tap_norm"])
    s["global_levels"] = bool(s["global_levels"])
    return s
