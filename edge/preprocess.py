"""The one source of truth for preprocessing.

The trainer, the exporter's calibration set, the benchmarks and the edge
runtime all turn an image into model input through :func:`to_model_input`, so
a model sees the same pixels on the workstation and on the Pi.

What happens, in order:

1. decode + convert to RGB uint8 (``edge.imageio``; JPEGs are decoded at a
   reduced DCT scale with ``draft()`` when that still leaves >= 2x the target);
2. resize to the model's input size with Pillow bilinear (``reducing_gap``
   makes big images cheap), stretching rather than cropping so that a defect
   at the border is never cut away;
3. nothing else on the host: scaling to the backbone's range (x/127.5 - 1) is
   a layer inside the model graph, so a deployed model takes raw uint8 pixels.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

RESAMPLE = Image.BILINEAR
REDUCING_GAP = 2.0
# Inside the model graph (trainer.model); recorded here so metadata can say it.
SCALE = 1.0 / 127.5
OFFSET = -1.0


def as_hw(size):
    """``224`` or ``(224, 224)`` -> (height, width)."""
    if isinstance(size, (tuple, list)):
        h, w = int(size[0]), int(size[1])
    else:
        h = w = int(size)
    if h <= 0 or w <= 0:
        raise ValueError(f"input size must be positive, got {size!r}")
    return h, w


def resize_image(img: Image.Image, size) -> Image.Image:
    """Resize an RGB PIL image to ``size`` (int or (h, w)) exactly as training did."""
    h, w = as_hw(size)
    if img.size == (w, h):
        return img
    return img.resize((w, h), RESAMPLE, reducing_gap=REDUCING_GAP)


def to_model_input(image, size) -> np.ndarray:
    """RGB uint8 image (PIL or HxWx3 array) -> uint8 array of shape (h, w, 3).

    Arrays must already be RGB (convert OpenCV's BGR frames first).
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
        h, w = as_hw(size)
        if image.shape[:2] == (h, w):
            return np.ascontiguousarray(image)
        image = Image.fromarray(image)
    return np.asarray(resize_image(image, size), dtype=np.uint8)


def describe(size) -> dict:
    """Preprocessing facts, written next to every run and into model metadata."""
    h, w = as_hw(size)
    return {
        "input_height": h,
        "input_width": w,
        "color": "RGB",
        "dtype": "uint8",
        "resize": "bilinear",
        "reducing_gap": REDUCING_GAP,
        "aspect": "stretch",
        "jpeg_draft": True,
        "in_graph_scale": SCALE,
        "in_graph_offset": OFFSET,
        "source_of_truth": "edge.preprocess.to_model_input",
    }


def quantize_pixels(x: np.ndarray, dtype, quantization) -> np.ndarray:
    """Raw uint8 pixels -> a model input of ``dtype`` with TFLite ``(scale, zero_point)``.

    The model's own graph scales pixels, so a float input takes the pixels as floats
    and an integer input takes ``round(pixel / scale + zero_point)`` (identity for the
    scale 1 / zero point 0 that export pins).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = quantization
    if (scale == 1.0 or not scale) and zero == 0 and dtype == np.uint8 and x.dtype == np.uint8:
        return x
    q = np.rint(x.astype(np.float32) / np.float32(scale or 1.0) + np.float32(zero))
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)
