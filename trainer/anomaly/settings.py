"""``TrainConfig.anomaly`` for ``--mode anomaly``: defaults, documentation and checks.

Keys (all optional)::

    taps         ["block_5_add", "block_12_add"]  MobileNetV2 layers whose outputs are the patch
                 features (first = the map grid; stride 8 and 16 at any input size)
    tap_norm     true   L2-normalise each tap before the concat (equal weight per depth)
    pool         3      local average window over the feature grid (1 = off)
    bank_size    2048   memory-bank rows kept by the greedy coreset (int8: bank_size * D bytes)
    proj_dim     128    random-projection width used while choosing the coreset
    quantile     0.99   quantile of held-out good raw scores that sets the threshold ...
    margin       1.1    ... threshold = median + margin * (quantile - median)
    span         5.0    sigmoid scale s = (1 - threshold) / span: raw distance 1 -> sigmoid(span);
                        keeps defect scores apart in int8 (1/256 output steps) instead of all at 1
    batch_size   16     images per feature-extraction batch
    save_maps    false  write anomaly-map overlays for a sample of test images to run_dir/maps/
    max_maps     24     how many overlays at most (spread over the test types)
"""
from __future__ import annotations

from trainer.config import ConfigError

DEFAULTS = {
    "taps": ["block_5_add", "block_12_add"],
    "pool": 3,
    "tap_norm": True,
    "bank_size": 2048,
    "proj_dim": 128,
    "quantile": 0.99,
    "margin": 1.1,
    "span": 5.0,
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
    for key, lo in (("pool", 1), ("bank_size", 1), ("proj_dim", 0), ("batch_size", 1), ("max_maps", 0)):
        try:
            s[key] = int(s[key])
        except (TypeError, ValueError):
            bad(key, "is not an integer")
        if s[key] < lo:
            bad(key, f"must be >= {lo}")
    for key in ("quantile", "margin", "span"):
        try:
            s[key] = float(s[key])
        except (TypeError, ValueError):
            bad(key, "is not a number")
    if not 0.5 <= s["quantile"] < 1.0:
        bad("quantile", "must be in [0.5, 1)")
    if s["margin"] < 1.0:
        bad("margin", "must be >= 1 (below 1 the threshold sits inside the good scores)")
    if s["span"] <= 0:
        bad("span", "must be > 0")
    s["save_maps"] = bool(s["save_maps"])
    s["tap_norm"] = bool(s["tap_norm"])
    return s
