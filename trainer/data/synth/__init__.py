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
Each kind of part is drawn in its own module (``hazelnut``, ``casting``) from the shared
helpers in ``draw``; this module holds the public API and the file layout.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.data.synth.casting import _render_casting
from trainer.data.synth.draw import _KIND_ID, _MIN_ALPHA, SUBTLE_FRACTION
from trainer.data.synth.hazelnut import _render_hazelnut

DEFECTS = {"hazelnut": ["crack", "cut", "hole", "print"], "casting": ["blowhole", "burr", "scratch"]}
KINDS = tuple(DEFECTS)
_SUBSET_ID = {"train": 0, "test": 1}


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
