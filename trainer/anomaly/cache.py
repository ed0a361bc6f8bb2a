"""``RUN/update_cache.npz``: what ``train --update`` needs so that it never recomputes old images' features.

The patch features of the training images (N x h x w x D) are far too large to keep, and the bank
stands in for them (a coreset over old bank + new patches covers both). What cannot be rebuilt from
the bank is kept: the out-of-fold raw scores of every fitted good image (the threshold's sample), the
pooled global statistics behind the Gaussian (N x C, a few hundred kB) and the fitted files' hashes.
"""
from __future__ import annotations

import numpy as np

from trainer.data.run_contract import read_update_cache, write_update_cache

KEYS = ("bank", "oof_patch", "oof_global", "fit_global", "fit_sha256")


def save_update_cache(run_dir, *, bank, oof_patch, oof_global, fit_global, fit_sha256):
    empty = np.zeros((0,), np.float32)
    write_update_cache(run_dir, dict(
        bank=np.asarray(bank, np.float32), oof_patch=np.asarray(oof_patch, np.float64),
        oof_global=empty if oof_global is None else np.asarray(oof_global, np.float64),
        fit_global=empty if fit_global is None else np.asarray(fit_global, np.float32),
        fit_sha256=np.asarray(list(fit_sha256), dtype="U64")))


def load_update_cache(run_dir) -> dict:
    """The cache as arrays (``oof_global``/``fit_global`` None without a global path); one-line errors."""
    out = read_update_cache(run_dir, KEYS)
    for k in ("oof_global", "fit_global"):
        if out[k].size == 0:
            out[k] = None
    out["fit_sha256"] = [str(h) for h in out["fit_sha256"]]
    return out
