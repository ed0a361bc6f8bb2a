"""Read an MVTec-AD-layout folder into labelled items, and images into batches.

Layout::

    ROOT/train/good/*.png                 good parts for training
    ROOT/train/<type>/*                   (optional) defective parts already set aside for training
    ROOT/test/good/*, ROOT/test/<type>/*  good and defective parts
    ROOT/ground_truth/<type>/<stem>_mask.png   (optional) defect masks

Hidden files and files without an image extension are ignored (and counted, so
``edgeinspect data info`` can say so); a folder without images is an error, because
a silently empty class makes a model that never predicts it. Every image the
trainer, anomaly mode and export calibration read goes through :func:`load_batch`,
which is built only on ``edge.imageio.load_image`` so the device sees the same pixels.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edge.errors import DataError, ImageError
from edge.imageio import IMAGE_EXTENSIONS, is_image_path, load_image, open_image
from trainer.data.run_contract import GOOD

SUBSETS = ("train", "test")
LAYOUT_HINT = "expected MVTec AD layout: ROOT/train/good/*.png and ROOT/test/<good|defect type>/*.png"


@dataclass(frozen=True)
class Item:
    path: Path
    label: int            # 1 = defective, 0 = good
    defect_type: str      # "good" or the defect folder name
    subset: str           # "train" | "test" (the folder it came from, not the split)
    mask: Optional[Path] = None


@dataclass
class Dataset:
    root: Path
    items: list
    classes: list                                  # "good" first, then defect types sorted
    ignored: list = field(default_factory=list)    # hidden / non-image files that were skipped

    @property
    def class_to_index(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    @property
    def defect_types(self) -> list:
        return [c for c in self.classes if c != GOOD]

    def counts(self) -> dict:
        """{(subset, type): n}."""
        return dict(Counter((it.subset, it.defect_type) for it in self.items))


def _is_hidden(p: Path) -> bool:
    return p.name.startswith(".") or p.name.startswith("~$") or p.name in ("Thumbs.db", "desktop.ini")


def _list_images(folder: Path, ignored: list) -> list:
    images, skipped = [], []
    for p in sorted(folder.iterdir()):
        if _is_hidden(p) or not p.is_file() or not is_image_path(p):
            skipped.append(p)
            continue
        images.append(p)
    ignored.extend(skipped)
    if not images:
        what = f"{len(skipped)} other file(s)" if skipped else "nothing"
        raise DataError(
            f"{folder}: class folder has no images ({what} there; image types: {', '.join(IMAGE_EXTENSIONS)}); "
            f"add images or remove the folder")
    return images


def _mask_for(root: Path, defect_type: str, image: Path) -> Optional[Path]:
    gt = root / "ground_truth" / defect_type
    for ext in (".png", image.suffix, ".bmp", ".tif", ".tiff", ".jpg"):
        candidate = gt / f"{image.stem}_mask{ext}"
        if candidate.is_file():
            return candidate
    return None


def scan(root, require_test=True) -> Dataset:
    """Index ``root`` (MVTec AD layout); raises DataError naming what is missing."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found (check the path; {LAYOUT_HINT})")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder ({LAYOUT_HINT})")
    if not (root / "train" / GOOD).is_dir():
        raise DataError(f"{root}: no train/good folder ({LAYOUT_HINT})")
    if require_test and not (root / "test").is_dir():
        raise DataError(f"{root}: no test folder (put good and defective images in test/good, test/<type>; {LAYOUT_HINT})")
    items, ignored = [], []
    for subset in SUBSETS:
        base = root / subset
        if not base.is_dir():
            continue
        for folder in sorted(base.iterdir()):
            if _is_hidden(folder) or not folder.is_dir():
                ignored.append(folder)
                continue
            t = folder.name
            if t.lower() == GOOD and t != GOOD:
                raise DataError(f"{folder}: name the good-parts folder exactly 'good' (lower case)")
            for p in _list_images(folder, ignored):
                label = 0 if t == GOOD else 1
                items.append(Item(p, label, t, subset, None if label == 0 else _mask_for(root, t, p)))
    if not items:
        raise DataError(f"{root}: no images found ({LAYOUT_HINT})")
    types = sorted({it.defect_type for it in items if it.label == 1})
    return Dataset(root=root, items=items, classes=[GOOD] + types, ignored=ignored)


def load_batch(paths, size, skip_bad=False, warn=None):
    """Decode ``paths`` to an (N, H, W, 3) uint8 array via ``edge.imageio.load_image``.

    With ``skip_bad=False`` the first unreadable image raises its ImageError (naming
    the file). With ``skip_bad=True`` each bad file is reported on its own warning line
    (through ``warn``, default click.echo to stderr) and ``(batch, kept_indices)`` is
    returned, so callers can keep labels aligned.
    """
    from edge.preprocess import as_hw

    h, w = as_hw(size)
    paths = list(paths)
    out = np.empty((len(paths), h, w, 3), np.uint8)
    kept = []
    for i, p in enumerate(paths):
        try:
            out[len(kept)] = load_image(p, (h, w))
        except ImageError as exc:
            if not skip_bad:
                raise
            _warn(warn, f"warning: skipping bad image {exc}")
            continue
        kept.append(i)
    batch = out[: len(kept)]
    if skip_bad:
        return batch, kept
    return batch


def _warn(warn, line):
    if warn is not None:
        warn(line)
    else:
        import click

        click.echo(line, err=True)


def find_bad(paths, progress=None) -> list:
    """Fully decode every image; returns [(path, one-line reason)] for those that fail."""
    from edge.progress import as_progress

    bad = []
    paths = list(paths)
    with as_progress(progress).bar(len(paths), "images decoded") as step:
        for p in paths:
            try:
                open_image(p)
            except ImageError as exc:
                bad.append((Path(p), str(exc)))
            step()
    return bad


def summarize(ds: Dataset) -> dict:
    """Counts per subset/type, image sizes and modes (headers only, cheap), ignored files."""
    from PIL import Image

    sizes, modes, unreadable = Counter(), Counter(), []
    for it in ds.items:
        try:
            with Image.open(it.path) as im:
                sizes[f"{im.size[0]}x{im.size[1]}"] += 1
                modes[im.mode] += 1
        except Exception as exc:  # noqa: BLE001 - reported, not fatal, for an overview
            unreadable.append(f"{it.path}: {type(exc).__name__}")
    counts = ds.counts()
    return {
        "root": str(ds.root),
        "classes": ds.classes,
        "counts": {f"{s}/{t}": n for (s, t), n in sorted(counts.items())},
        "images": len(ds.items),
        "masks": sum(1 for it in ds.items if it.mask is not None),
        "sizes": dict(sizes.most_common()),
        "modes": dict(modes.most_common()),
        "ignored": len(ds.ignored),
        "ignored_examples": [str(p) for p in ds.ignored[:5]],
        "unreadable_headers": unreadable,
    }


__all__ = ["GOOD", "Item", "Dataset", "scan", "load_batch", "find_bad", "summarize"]
