"""Dataset scanning (layout errors, ignored files) and batch loading through edge.imageio."""
import shutil

import numpy as np
import pytest
from PIL import Image

from edge.errors import DataError, ImageError
from edge.imageio import load_image
from trainer.data.dataset import find_bad, load_batch, scan, summarize


def _img(path, value=100, size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 30)).save(path)
    return path


def _mini(root):
    for i in range(3):
        _img(root / "train" / "good" / f"{i}.png", 50 + i)
    _img(root / "test" / "good" / "a.png")
    _img(root / "test" / "crack" / "b.png")
    _img(root / "test" / "crack" / "c.jpg")
    _img(root / "ground_truth" / "crack" / "b_mask.png", 255)
    return root


def test_scan_tiny_data_labels_classes_and_masks(tiny_data):
    ds = scan(tiny_data)
    assert ds.classes == ["good", "crack", "cut", "hole", "print"]
    assert ds.class_to_index == {"good": 0, "crack": 1, "cut": 2, "hole": 3, "print": 4}
    counts = ds.counts()
    assert counts[("train", "good")] == 30 and counts[("test", "good")] == 8
    assert all(counts[("test", t)] == 4 for t in ds.defect_types)
    for it in ds.items:
        assert it.label == (it.defect_type != "good")
        assert (it.mask is not None) == bool(it.label), it
        if it.mask is not None:
            assert it.mask.name == f"{it.path.stem}_mask.png" and it.mask.parent.name == it.defect_type


def test_hidden_and_non_image_files_are_ignored_and_counted(tmp_path):
    root = _mini(tmp_path / "d")
    (root / "train" / "good" / ".DS_Store").write_bytes(b"x")
    (root / "test" / "crack" / "notes.txt").write_text("operator notes")
    (root / "test" / ".cache").mkdir()
    ds = scan(root)
    assert len(ds.items) == 6
    assert sorted(p.name for p in ds.ignored) == [".DS_Store", ".cache", "notes.txt"]
    s = summarize(ds)
    assert s["ignored"] == 3 and s["images"] == 6 and s["masks"] == 1
    assert s["counts"] == {"test/crack": 2, "test/good": 1, "train/good": 3}
    assert s["sizes"] == {"20x16": 6} and s["modes"] == {"RGB": 6}


@pytest.mark.parametrize("breakage, message", [
    (lambda r: shutil.rmtree(r), "dataset folder not found"),
    (lambda r: shutil.rmtree(r / "train" / "good"), "no train/good folder"),
    (lambda r: shutil.rmtree(r / "test"), "no test folder"),
    (lambda r: [p.unlink() for p in (r / "test" / "crack").iterdir()], "class folder has no images"),
    (lambda r: (r / "test" / "good").rename(r / "test" / "Good"), "exactly 'good'"),
])
def test_layout_errors_are_one_line_data_errors(tmp_path, breakage, message):
    root = _mini(tmp_path / "d")
    breakage(root)
    with pytest.raises(DataError, match=message) as exc:
        scan(root)
    assert "\n" not in str(exc.value) and str(root) in str(exc.value)


def test_empty_class_folder_error_names_the_folder_and_other_files(tmp_path):
    root = _mini(tmp_path / "d")
    (root / "test" / "hole").mkdir()
    (root / "test" / "hole" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"test/hole: class folder has no images \(1 other file"):
        scan(root)


def test_load_batch_matches_load_image_exactly(tiny_data):
    paths = sorted((tiny_data / "test" / "crack").iterdir())
    batch = load_batch(paths, (40, 48))
    assert batch.shape == (len(paths), 40, 48, 3) and batch.dtype == np.uint8
    for p, b in zip(paths, batch):
        assert np.array_equal(b, load_image(p, (40, 48)))


def test_load_batch_bad_file_raises_or_is_skipped_by_name(tmp_path):
    good = [_img(tmp_path / f"{i}.png", 40 * i) for i in range(3)]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    paths = [good[0], bad, good[1], good[2]]
    with pytest.raises(ImageError, match="broken.png"):
        load_batch(paths, 8)
    lines = []
    batch, kept = load_batch(paths, 8, skip_bad=True, warn=lines.append)
    assert kept == [0, 2, 3] and batch.shape == (3, 8, 8, 3)
    assert np.array_equal(batch[1], load_image(good[1], 8))
    assert len(lines) == 1 and "broken.png" in lines[0] and lines[0].startswith("warning:")
    assert [p.name for p, _ in find_bad(paths)] == ["broken.png"]
