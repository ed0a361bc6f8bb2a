"""Synthetic parts: MVTec layout, exact masks, determinism, no trivial global cue."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.data.synth import DEFECTS, generate, render


def _digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


@pytest.mark.parametrize("kind", ["hazelnut", "casting"])
def test_layout_and_masks_match_defect_images_one_to_one(tmp_path, kind):
    root = generate(tmp_path / kind, kind=kind, size=64, n_train=3, n_test_good=2, n_per_defect=2, seed=3,
                    progress=False)
    assert sorted(p.name for p in (root / "train" / "good").iterdir()) == ["000.png", "001.png", "002.png"]
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(["good"] + DEFECTS[kind])
    assert sorted(p.name for p in (root / "ground_truth").iterdir()) == sorted(DEFECTS[kind])
    for d in DEFECTS[kind]:
        images = sorted(p.stem for p in (root / "test" / d).iterdir())
        masks = sorted(p.name for p in (root / "ground_truth" / d).iterdir())
        assert masks == [f"{s}_mask.png" for s in images]
        for s in images:
            img = Image.open(root / "test" / d / f"{s}.png")
            m = np.asarray(Image.open(root / "ground_truth" / d / f"{s}_mask.png"))
            assert img.mode == "RGB" and img.size == (64, 64) and m.shape == (64, 64)
            assert set(np.unique(m)) == {0, 255}, "mask must be binary 0/255 and non-empty"


@pytest.mark.parametrize("kind", ["hazelnut", "casting"])
def test_mask_covers_exactly_the_changed_pixels(kind):
    for d in DEFECTS[kind]:
        for i in range(4):
            img, mask, clean = render(kind, d, 96, seed=0, subset="test", index=i, return_clean=True)
            changed = (img != clean).any(axis=2)
            assert not (changed & (mask == 0)).any(), f"{kind}/{d}/{i}: pixels changed outside the mask"
            assert mask.any()
            assert changed[mask > 0].mean() > 0.6, f"{kind}/{d}/{i}: mask much larger than the defect"
    img, mask, clean = render(kind, None, 96, seed=0, subset="train", index=0, return_clean=True)
    assert mask is None and np.array_equal(img, clean)


def test_same_seed_is_byte_identical_and_any_subset_reproducible(tmp_path):
    kw = dict(kind="hazelnut", size=48, n_train=4, n_test_good=1, n_per_defect=1, progress=False)
    a = _digest(generate(tmp_path / "a", seed=7, **kw))
    b = _digest(generate(tmp_path / "b", seed=7, workers=2, **kw))
    c = _digest(generate(tmp_path / "c", seed=8, **kw))
    assert a == b, "same seed (serial vs 2 workers) must give byte-identical files"
    assert all(a[k] != c[k] for k in a if k.endswith(".png") and "ground_truth" not in k)
    # A bigger set with the same seed shares its first images: each image has its own seed.
    d = _digest(generate(tmp_path / "d", seed=7, **{**kw, "n_train": 6}))
    assert all(d[k] == v for k, v in a.items() if k.startswith("train/"))
    assert len({v for k, v in a.items() if k.startswith("train/")}) == 4, "images must differ from each other"


@pytest.mark.parametrize("kind", ["hazelnut", "casting"])
def test_global_mean_colour_does_not_give_the_class_away(kind):
    good = np.array([render(kind, None, 64, 0, "test", i)[0].mean(axis=(0, 1)) for i in range(16)])
    spread = good.std(axis=0)
    shifts = []
    for d in DEFECTS[kind]:
        for i in range(4):
            img, _, clean = render(kind, d, 64, 0, "test", i, return_clean=True)
            shifts.append(np.abs(img.mean(axis=(0, 1)) - clean.mean(axis=(0, 1))))
    # Part-to-part variation must dwarf whatever a defect does to the mean colour.
    assert (np.max(shifts, axis=0) < 0.5 * spread).all(), (np.max(shifts, axis=0), spread)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown kind"):
        render("walnut")
    with pytest.raises(ValueError, match="unknown hazelnut defect"):
        render("hazelnut", "burr")
    with pytest.raises(ValueError, match="size"):
        render("hazelnut", None, 8)
    with pytest.raises(ValueError, match="n_train"):
        generate(tmp_path / "x", n_train=-1, progress=False)
