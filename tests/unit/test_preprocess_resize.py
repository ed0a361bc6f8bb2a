"""edge.preprocess.to_model_input: the one resize, with and without OpenCV, and what it keeps."""
import sys

import numpy as np
import pytest
from PIL import Image

import edge.preprocess as pp
from edge.preprocess import halvings, to_model_input

SHAPES = [((1080, 1920), 224), ((2160, 3840), 224), ((480, 640), 224), ((341, 512), 224),
          ((601, 449), (224, 160)), ((895, 897), 224), ((1000, 60), 224), ((9, 7), 3)]


@pytest.mark.parametrize("shape,size", SHAPES)
def test_opencv_and_pillow_numpy_paths_are_bit_identical(shape, size):
    pytest.importorskip("cv2")
    a = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    ref = to_model_input(a, size, use_opencv=True)
    assert ref.shape == pp.as_hw(size) + (3,) and ref.dtype == np.uint8 and ref.flags.c_contiguous
    for out in (to_model_input(a, size, use_opencv=False), to_model_input(Image.fromarray(a), size, use_opencv=False),
                to_model_input(Image.fromarray(a), size, use_opencv=True)):
        assert np.array_equal(out, ref)


def test_without_opencv_installed_the_pixels_are_the_same(monkeypatch):
    pytest.importorskip("cv2")
    a = np.random.default_rng(3).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    ref = to_model_input(a, 224)
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    monkeypatch.setattr(pp, "_CV2", None)
    assert pp._cv2() is False
    assert np.array_equal(to_model_input(a, 224), ref)


def test_images_under_twice_the_input_keep_the_pillow_pixels_of_earlier_models():
    a = np.random.default_rng(0).integers(0, 256, (256, 300, 3), dtype=np.uint8)
    old = np.asarray(Image.fromarray(a).resize((224, 224), Image.BILINEAR, reducing_gap=2.0))
    assert halvings(256, 300, 224) == (0, 0)
    assert np.array_equal(to_model_input(a, 224), old)
    assert np.array_equal(to_model_input(a, 224, use_opencv=False), old)


def test_halving_counts_leave_under_twice_the_target():
    assert halvings(1080, 1920, 224) == (2, 3)   # 270 x 240 before the last step
    assert halvings(447, 448, 224) == (0, 1)
    assert halvings(2160, 3840, (224, 160)) == (3, 4)
    assert halvings(100, 100, 224) == (0, 0)


def test_fine_texture_is_averaged_not_aliased():
    # a 1-pixel checkerboard at 8x the target: every output pixel must be the mean, not a sample of it
    a = np.zeros((1792, 1792, 3), np.uint8)
    a[(np.indices((1792, 1792)).sum(0) % 2) == 1] = 200
    for cv in (True, False):
        out = to_model_input(a, 224, use_opencv=cv)
        assert out.min() == out.max() == 100


def test_a_bright_column_at_the_border_survives():
    a = np.zeros((1080, 1920, 3), np.uint8)
    a[:, -8:] = 255  # the last 8 of 1920 columns: ~1 output column of 224
    out = to_model_input(a, 224)
    assert out[:, -1].min() > 200 and out[:, :-2].max() == 0


def test_constant_frames_stay_constant_and_bad_arrays_are_refused():
    a = np.full((2160, 3840, 3), (10, 200, 30), np.uint8)
    assert (to_model_input(a, (96, 128)) == (10, 200, 30)).all()
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        to_model_input(np.zeros((10, 10), np.float32), 4)


def test_random_shapes_agree_bit_for_bit():
    pytest.importorskip("cv2")
    rng = np.random.default_rng(18)
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(1, 1400, 2))
        size = (int(rng.integers(1, 300)), int(rng.integers(1, 300)))
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert np.array_equal(to_model_input(a, size, use_opencv=True), to_model_input(a, size, use_opencv=False)), \
            (h, w, size)


@pytest.mark.parametrize("shape,size", SHAPES + [((224, 224), 224)])
@pytest.mark.parametrize("use_opencv", [True, False])
def test_a_bgr_frame_resized_then_swapped_gives_the_rgb_frames_pixels(shape, size, use_opencv):
    if use_opencv:
        pytest.importorskip("cv2")
    rgb = np.random.default_rng(sum(shape) + 7).integers(0, 256, shape + (3,), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    out = to_model_input(bgr, size, use_opencv=use_opencv, bgr=True)
    assert out.flags.c_contiguous
    assert np.array_equal(out, to_model_input(rgb, size, use_opencv=use_opencv))
    assert not np.array_equal(to_model_input(bgr, size, use_opencv=use_opencv), out)  # the swap happened


def test_bgr_is_refused_for_a_pil_image():
    with pytest.raises(ValueError, match="bgr=True needs an HxWx3 array"):
        to_model_input(Image.new("RGB", (300, 300)), 224, bgr=True)


@pytest.mark.parametrize("use_opencv", [True, False])
def test_a_strided_bgr_view_at_the_model_size_is_swapped_like_a_contiguous_one(use_opencv):
    if use_opencv:
        pytest.importorskip("cv2")
    big = np.random.default_rng(5).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    view = big[10:234, 20:244]  # a crop: no resize happens, and the array is not C-contiguous
    assert not view.flags.c_contiguous
    out = to_model_input(view, 224, use_opencv=use_opencv, bgr=True)
    assert out.flags.c_contiguous and np.array_equal(out, view[..., ::-1])
