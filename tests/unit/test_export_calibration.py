"""Calibration set: stratified, seeded, bad images named or skipped; extremes pin the uint8 input range."""
import numpy as np
import pytest
from PIL import Image

from edge.errors import ImageError
from export import calibration
from export.errors import ExportError


def _files(counts):
    out = []
    for typ, n in counts.items():
        out += [{"path": f"train/{typ}/{i:03d}.png", "type": typ, "label": int(typ != "good"), "split": "train"}
                for i in range(n)]
    return out


def test_stratified_sample_is_proportional_and_covers_every_type():
    files = _files({"good": 200, "crack": 40, "hole": 8, "rare": 2})
    got = calibration.stratified_sample(files, 50, seed=0)
    counts = {}
    for f in got:
        counts[f["type"]] = counts.get(f["type"], 0) + 1
    assert len(got) == 50 and len({f["path"] for f in got}) == 50
    assert set(counts) == {"good", "crack", "hole", "rare"}  # the rare type is not dropped
    assert counts["good"] > counts["crack"] > counts["hole"] >= counts["rare"] >= 1
    assert abs(counts["good"] - 50 * 200 / 250) <= 2


def test_stratified_sample_is_seeded():
    files = _files({"good": 100, "crack": 30})
    a = calibration.stratified_sample(files, 20, seed=1)
    b = calibration.stratified_sample(files, 20, seed=1)
    c = calibration.stratified_sample(files, 20, seed=2)
    assert [f["path"] for f in a] == [f["path"] for f in b]
    assert [f["path"] for f in a] != [f["path"] for f in c]


def test_stratified_sample_takes_all_when_fewer_and_rejects_zero():
    files = _files({"good": 5, "crack": 2})
    assert len(calibration.stratified_sample(files, 300)) == 7
    with pytest.raises(ExportError):
        calibration.stratified_sample(files, 0)


def _write_set(tmp_path, n_good=3, bad=True):
    paths = []
    for i in range(n_good):
        p = tmp_path / f"good{i}.png"
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(p)
        paths.append(p)
    if bad:
        p = tmp_path / "broken.png"
        p.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        paths.insert(1, p)
    return paths


def test_unreadable_calibration_image_is_named(tmp_path):
    paths = _write_set(tmp_path)
    with pytest.raises(ImageError) as exc:
        calibration.load_images(paths, (16, 16), what="calibration images")
    msg = str(exc.value)
    assert "broken.png" in msg and "--skip-bad" in msg and "\n" not in msg


def test_skip_bad_keeps_the_rest_with_a_warning_each(tmp_path):
    paths = _write_set(tmp_path)
    lines = []
    arr, kept, skipped = calibration.load_images(paths, (16, 16), skip_bad=True, progress=lines.append)
    assert arr.shape == (3, 16, 16, 3) and arr.dtype == np.uint8
    assert [p.split("/")[-1] for p in kept] == ["good0.png", "good1.png", "good2.png"]
    assert len(skipped) == 1 and "broken.png" in skipped[0]
    assert any("broken.png" in ln and "skip" in ln for ln in lines)
    assert arr[2].mean() == pytest.approx(80, abs=1)  # order (and so labels) preserved


def test_representative_dataset_pins_the_input_range_with_single_pixels():
    imgs = np.full((3, 8, 8, 3), 100, np.uint8)
    frames = [f[0] for f in calibration.representative_dataset(imgs)()]
    assert len(frames) == 5
    assert all(f.shape == (1, 8, 8, 3) and f.dtype == np.float32 for f in frames)
    allpix = np.concatenate([f.ravel() for f in frames])
    assert allpix.min() == 0 and allpix.max() == 255  # the input range is exactly 0..255
    for f in frames[-2:]:
        assert (f != 100).sum() == 3  # one pixel changed: internal activation ranges stay realistic
