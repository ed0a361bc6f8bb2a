"""Pixel AUROC and AUPRO: the MVTec AD map metrics, on maps whose right answer is known."""
import json

import numpy as np
import pytest
from PIL import Image

from edge.errors import ImageError
from trainer.pixel_metrics import aupro, load_mask, pixel_report, upsample
from trainer.metrics import auroc


def _masks():
    m = np.zeros((4, 32, 32), bool)
    m[0, 4:20, 4:20] = True      # a large region
    m[1, 2:5, 25:28] = True      # a small region
    return m


def test_a_map_equal_to_the_mask_scores_one_and_noise_scores_chance():
    masks = _masks()
    perfect = masks.astype(np.float32)
    assert auroc(masks.ravel(), perfect.ravel()) == 1.0
    assert aupro(perfect, masks) == pytest.approx(1.0)
    noise = np.random.default_rng(0).random(masks.shape).astype(np.float32)
    assert abs(auroc(masks.ravel(), noise.ravel()) - 0.5) < 0.05
    # random scores: a region's expected overlap is the false-positive rate, so the normalised area is
    # 0.3 / 2 (the 9-pixel region alone is too small for its overlap to follow that closely)
    masks[1] = False
    assert aupro(noise, masks) == pytest.approx(0.15, abs=0.02)


def test_aupro_weighs_regions_not_pixels():
    masks = _masks()
    maps = np.random.default_rng(1).random(masks.shape).astype(np.float32)
    maps[0][masks[0]] = 2.0      # the large region found ...
    maps[1][masks[1]] = -1.0     # ... the small one scored below every good pixel
    px = auroc(masks.ravel(), maps.ravel())
    pro = aupro(maps, masks)
    assert px > 0.9              # most defect pixels are in the large region
    assert pro == pytest.approx(0.5, abs=0.02)


def test_upsample_is_bilinear_and_keeps_constants():
    m = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    up = upsample(m, (4, 4))
    assert up.shape == (1, 4, 4)
    assert up[0, 0, 0] == pytest.approx(0.0) and up[0, 3, 3] == pytest.approx(3.0)
    assert up[0, 1, 1] == pytest.approx(0.75 * 0.75 * 0 + 0.75 * 0.25 * 1 + 0.25 * 0.75 * 2 + 0.25 * 0.25 * 3)
    assert np.allclose(upsample(np.full((2, 3, 5), 0.7, np.float32), (9, 7)), 0.7)


def test_pixel_report_uses_masks_and_skips_unmasked_defects(tmp_path):
    (tmp_path / "gt").mkdir()
    mask = np.zeros((64, 48), np.uint8)
    mask[10:30, 5:20] = 255
    Image.fromarray(mask).save(tmp_path / "gt" / "a_mask.png")
    files = [{"path": "good.png", "label": 0}, {"path": "a.png", "label": 1, "mask": "gt/a_mask.png"},
             {"path": "b.png", "label": 1}]
    hw = (16, 16)
    want = load_mask(tmp_path / "gt" / "a_mask.png", hw)
    maps = np.stack([np.zeros(hw), want.astype(float), np.ones(hw)]).astype(np.float32)
    rep = pixel_report(maps, files, tmp_path, hw)
    assert rep["images"] == 2 and rep["masked"] == 1    # b.png has no mask: its pixels are unknown
    assert rep["pixel_auroc"] == 1.0 and rep["aupro"] == pytest.approx(1.0)
    json.dumps(rep)
    assert pixel_report(maps[:1], files[:1], tmp_path, hw) is None


def test_an_unreadable_mask_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "x_mask.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageError) as err:
        load_mask(bad, (8, 8))
    assert "x_mask.png" in str(err.value) and "\n" not in str(err.value)
