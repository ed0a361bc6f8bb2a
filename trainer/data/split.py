"""Seeded, stratified train/val/test splits written as a manifest (see ARCHITECTURE.md).

Protocols:

* ``good-only``: train = train/good minus a seeded ``val`` fraction (for threshold
  calibration of the anomaly model); test = everything under test/.
* ``supervised``: move ``defects_per_type`` defective images of every type (or
  ``defects_total`` dealt round-robin over types) from test into train, then hold out
  a stratified ``val`` fraction of train; test = the rest.
* ``kfold``: stratified K folds over test/* by type (each such file records its
  ``fold``); the chosen fold is test, the other folds join train/good in train, and a
  stratified ``val`` is held out of train.

A file appears exactly once. The manifest format, its hash and its readers are
``trainer.data.run_contract``'s.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edge.errors import DataError
from trainer.data.dataset import scan
from trainer.data.run_contract import GOOD, SPLITS, build_manifest, file_sha256, load_manifest, resolve_root

PROTOCOLS = ("good-only", "supervised", "kfold")
DEFECTS_PER_TYPE = 10  # supervised: defective images of each type moved from test into train
VAL_FRACTION = 0.2     # of train held out (stratified) to choose the threshold
K_FOLDS = 5            # kfold: number of folds


def _rng(seed, *salt):
    return np.random.default_rng(np.random.SeedSequence([int(seed), *salt]))


def _shuffled(items, rng):
    return [items[i] for i in rng.permutation(len(items))]


def _apportion(sizes: dict, total: int, caps: dict, rng) -> dict:
    """Split ``total`` over groups in proportion to ``sizes`` (largest remainder, capped)."""
    n = sum(sizes.values())
    take = {k: 0 for k in sizes}
    if n == 0 or total <= 0:
        return take
    quota = {k: total * v / n for k, v in sizes.items()}
    for k in sizes:
        take[k] = min(int(math.floor(quota[k])), caps[k])
    # Remainders, ties broken by a seeded draw rather than by name order.
    tiebreak = dict(zip(sorted(sizes), rng.random(len(sizes))))
    order = sorted(sizes, key=lambda k: (-(quota[k] - math.floor(quota[k])), tiebreak[k]))
    left = total - sum(take.values())
    while left > 0:
        progressed = False
        for k in order:
            if left > 0 and take[k] < caps[k]:
                take[k] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return take


def _hold_out_val(train_by_type: dict, val_fraction: float, rng) -> tuple:
    """Stratified val from train: good by fraction; defectives apportioned over types with
    at least one when train holds >= 2 defectives; every type keeps >= 1 in train."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    val, train = [], []
    good = _shuffled(train_by_type.get(GOOD, []), rng)
    n_good_val = int(round(val_fraction * len(good))) if len(good) >= 2 else 0
    if val_fraction > 0 and len(good) >= 2:
        n_good_val = min(max(n_good_val, 1), len(good) - 1)
    val += good[:n_good_val]
    train += good[n_good_val:]
    defect_types = sorted(t for t in train_by_type if t != GOOD)
    sizes = {t: len(train_by_type[t]) for t in defect_types}
    n_def = sum(sizes.values())
    total = int(round(val_fraction * n_def))
    if val_fraction > 0 and n_def >= 2:
        total = max(total, 1)
    caps = {t: max(0, sizes[t] - 1) for t in defect_types}
    take = _apportion(sizes, total, caps, rng)
    for t in defect_types:
        items = _shuffled(train_by_type[t], rng)
        val += items[: take[t]]
        train += items[take[t]:]
    return train, val


def _group(items):
    out = {}
    for it in items:
        out.setdefault(it.defect_type, []).append(it)
    return out


def make_split(root, protocol, seed=0, val_fraction=VAL_FRACTION, defects_per_type=DEFECTS_PER_TYPE, defects_total=None,
               k=K_FOLDS, fold=0, exclude=(), dataset=None) -> dict:
    """Build a manifest dict for ``root`` (see module doc). ``exclude``: paths to leave out
    (e.g. unreadable images found by ``--skip-bad``); they are listed in ``params``."""
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    root = Path(root)
    ds = dataset if dataset is not None else scan(root)
    excluded = {Path(p).resolve() for p in exclude}
    items = [it for it in ds.items if it.path.resolve() not in excluded]
    train_pool = [it for it in items if it.subset == "train"]
    test_pool = [it for it in items if it.subset == "test"]
    train_good = [it for it in train_pool if it.label == 0]
    if not train_good:
        raise DataError(f"{root}: no usable images in train/good (all excluded?)")
    params = {"val_fraction": val_fraction}
    assign = {}     # Item -> split
    folds = {}      # Item -> fold

    if protocol == "good-only":
        # Defective images under train/ (if any) are not for an anomaly model: evaluate them.
        test = test_pool + [it for it in train_pool if it.label == 1]
        if len(train_good) < 2 and val_fraction > 0:
            raise DataError(f"{root}: good-only needs >= 2 images in train/good to hold out a validation part")
        train, val = _hold_out_val({GOOD: train_good}, val_fraction, _rng(seed, 1))
    elif protocol == "supervised":
        test_by_type = _group(test_pool)
        types = sorted(t for t in test_by_type if t != GOOD)
        have_train_defects = any(it.label == 1 for it in train_pool)
        if not types and not have_train_defects:
            raise DataError(f"{root}: supervised needs defective images (test/<type>/); found only good ones")
        rng = _rng(seed, 2)
        pools = {t: _shuffled(test_by_type[t], rng) for t in types}
        if defects_total is not None:
            params["defects_total"] = int(defects_total)
            want = {t: 0 for t in types}
            avail = {t: len(pools[t]) - 1 for t in types}   # keep one of each type to test on
            if defects_total > sum(max(a, 0) for a in avail.values()):
                raise DataError(
                    f"{root}: --defects-total {defects_total} is more than the {sum(max(a, 0) for a in avail.values())} "
                    f"defective test images that can move while keeping one of each type for testing; lower it")
            left = int(defects_total)
            while left > 0:
                for t in types:
                    if left > 0 and want[t] < avail[t]:
                        want[t] += 1
                        left -= 1
        else:
            defects_per_type = DEFECTS_PER_TYPE if defects_per_type is None else int(defects_per_type)
            params["defects_per_type"] = defects_per_type
            want = {}
            for t in types:
                if len(pools[t]) <= defects_per_type:
                    raise DataError(
                        f"{root}: only {len(pools[t])} images in test/{t}; --defects-per-type {defects_per_type} needs "
                        f"{defects_per_type + 1} (one must stay for testing); lower it or use --defects-total")
                want[t] = int(defects_per_type)
        moved = [it for t in types for it in pools[t][: want[t]]]
        moved_set = set(moved)
        test = [it for it in test_pool if it not in moved_set]
        train, val = _hold_out_val(_group(train_pool + moved), val_fraction, rng)
        if not any(it.label == 1 for it in train + val):
            raise DataError(f"{root}: supervised split moved no defective images into train; raise --defects-per-type")
    else:  # kfold
        k, fold = int(k), int(fold)
        if k < 2:
            raise DataError(f"--k must be >= 2, got {k}")
        if not 0 <= fold < k:
            raise DataError(f"--fold must be in 0..{k - 1}, got {fold}")
        params.update(k=k, fold=fold)
        test_by_type = _group(test_pool)
        if not any(t != GOOD for t in test_by_type):
            raise DataError(f"{root}: kfold needs defective images in test/<type>/; found only good ones")
        rng = _rng(seed, 3)
        offset = 0
        for t in sorted(test_by_type):
            members = _shuffled(test_by_type[t], rng)
            if len(members) < k:
                raise DataError(f"{root}: kfold with --k {k} needs >= {k} images of each type; test/{t} has "
                                f"{len(members)} (lower --k)")
            # A running offset over types keeps folds equal in size as well as stratified.
            for i, it in enumerate(members):
                folds[it] = (offset + i) % k
            offset += len(members)
        test = [it for it in test_pool if folds[it] == fold]
        rest = [it for it in test_pool if folds[it] != fold]
        train, val = _hold_out_val(_group(train_pool + rest), val_fraction, rng)

    for split, members in (("train", train), ("val", val), ("test", test)):
        for it in members:
            assert it not in assign, f"{it.path} assigned twice"
            assign[it] = split
    if excluded:
        params["excluded"] = sorted(_rel(p, root) for p in excluded)

    files = []
    for it in sorted(assign, key=lambda i: _rel(i.path, root)):
        entry = {"path": _rel(it.path, root), "label": int(it.label), "type": it.defect_type,
                 "split": assign[it], "sha256": file_sha256(it.path)}
        if it in folds:
            entry["fold"] = folds[it]
        if it.mask is not None:
            entry["mask"] = _rel(it.mask, root)
        files.append(entry)
    return build_manifest(root, protocol, seed, params, files)


def _rel(path, root) -> str:
    path, root = Path(path), Path(root)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def count_table(manifest: dict) -> list:
    """Rows [split, class, n] for every split x class (zeros included), for printing."""
    rows = []
    for split in SPLITS:
        for c in manifest["classes"]:
            rows.append([split, c, sum(1 for f in manifest["files"] if f["split"] == split and f["type"] == c)])
    return rows


def split_for_config(cfg, echo, protocol=None):
    """(manifest, root, source) for a training config: its ``--manifest``, or a split made now.

    Both trainers start here, so a run's data always comes from one place and the
    same errors. ``protocol`` overrides ``cfg.protocol`` (anomaly mode is good-only).
    """
    protocol = protocol or cfg.protocol
    if cfg.manifest:
        manifest = load_manifest(cfg.manifest)
        root = resolve_root(manifest, cfg.manifest, data=cfg.data)
        echo(f"split: {cfg.manifest} ({manifest['protocol']}, seed {manifest['seed']})")
        return manifest, root, str(cfg.manifest)
    if not cfg.data:
        raise DataError("no data: pass --data ROOT (MVTec AD layout) or --manifest M")
    root = Path(cfg.data)
    manifest = make_split(root, protocol, seed=cfg.seed, val_fraction=cfg.val_fraction,
                          defects_per_type=cfg.defects_per_type, defects_total=cfg.defects_total, k=cfg.k, fold=cfg.fold)
    echo(f"split: {protocol} of {root} (seed {cfg.seed}, val_fraction {cfg.val_fraction}), made now and saved in the run")
    return manifest, root, str(root)
