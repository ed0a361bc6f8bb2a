"""edge.preprocess.quantize_pixels: how raw pixels enter a float or integer TFLite input."""
import numpy as np

from edge.preprocess import quantize_pixels

PX = np.array([[[0, 1, 127], [128, 254, 255]]], dtype=np.uint8)


def test_float_input_takes_raw_pixels_as_floats():
    out = quantize_pixels(PX, np.float32, (0.0, 0))
    assert out.dtype == np.float32 and np.array_equal(out, PX.astype(np.float32))


def test_pinned_uint8_input_is_the_pixels_themselves():
    out = quantize_pixels(PX, np.uint8, (1.0, 0))
    assert out is PX  # no copy on the device's hot path


def test_other_scales_round_and_clip_into_the_dtype():
    # Coral-style input: real = (q - 128) / 128 in [-1, 1]; a model expecting pixels/2 + 10 as uint8.
    out = quantize_pixels(PX, np.uint8, (2.0, 10))
    assert np.array_equal(out, np.array([[[10, 10, 74], [74, 137, 138]]], np.uint8))
    out = quantize_pixels(PX, np.int8, (1.0, -128))
    assert out.dtype == np.int8 and out.min() == -128 and out.max() == 127
    assert np.array_equal(out.astype(int) + 128, PX.astype(int))
