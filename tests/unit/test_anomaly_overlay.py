"""edge.overlay: heat-map overlays written with NumPy + Pillow only."""
import numpy as np
import pytest
from PIL import Image

from edge.overlay import colorize, overlay_image, save_overlay, upsample_map


def _part():
    img = np.full((64, 80, 3), 120, np.uint8)
    img[:, :40] = 60
    return img


def test_colorize_ramp_ends_and_clipping():
    c = colorize(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]))
    assert c.dtype == np.uint8 and c.shape == (6, 3)
    assert tuple(c[0]) == tuple(c[1]) == (0, 0, 96)         # below 0 clipped, NaN -> 0
    assert tuple(c[3]) == tuple(c[4]) == (220, 0, 0)        # above 1 clipped
    assert tuple(c[5]) == (0, 0, 96)


def test_upsample_keeps_floats_and_size():
    m = np.zeros((4, 5), np.float32)
    m[1, 2] = 1.0
    up = upsample_map(m, 64, 80)
    assert up.shape == (64, 80) and up.dtype == np.float32
    assert 0.5 < up.max() <= 1.0 and up.min() >= 0.0
    r, c = np.unravel_index(np.argmax(up), up.shape)
    assert 16 <= r < 32 and 32 <= c < 48


def test_outline_marks_only_regions_over_threshold():
    img = _part()
    m = np.zeros((8, 10), np.float32)
    m[2:5, 3:6] = 0.9
    out = np.asarray(overlay_image(img, m, threshold=0.5))
    assert out.shape == img.shape and out.dtype == np.uint8
    white = np.all(out == 255, axis=-1)
    assert white.any()
    rows, cols = np.nonzero(white)
    assert rows.min() >= 8 and rows.max() < 48 and cols.min() >= 16 and cols.max() < 56
    # Nothing over threshold: no outline, and a cold map leaves the part recognisable.
    cold = np.asarray(overlay_image(img, np.full((8, 10), 0.1, np.float32), threshold=0.5))
    assert not np.all(cold == 255, axis=-1).any()
    assert cold[:, :40].mean() < cold[:, 40:].mean()


def test_accepts_batch1_maps_and_rejects_bad_input():
    img = _part()
    a = np.asarray(overlay_image(img, np.full((1, 8, 10), 0.7, np.float32)))
    b = np.asarray(overlay_image(img, np.full((8, 10), 0.7, np.float32)))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="uint8 RGB"):
        overlay_image(img.astype(np.float32), np.zeros((8, 10)))
    with pytest.raises(ValueError, match="2-D"):
        overlay_image(img, np.zeros((2, 8, 10)))


def test_save_overlay_writes_a_png_atomically(tmp_path):
    path = tmp_path / "maps" / "crack_001.png"
    got = save_overlay(_part(), np.random.default_rng(0).random((8, 10)).astype(np.float32), path)
    assert got == path and path.is_file()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (80, 64) and im.mode == "RGB"
    assert [p.name for p in path.parent.iterdir()] == ["crack_001.png"]
