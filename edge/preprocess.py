"""The one source of truth for preprocessing.

The trainer, the exporter's calibration set, the benchmarks and the edge
runtime all turn an image into model input through :func:`to_model_input`, so
a model sees the same pixels on the workstation and on the Pi.

What happens, in order:

1. decode + convert to RGB uint8 (``edge.imageio``; JPEGs, and MJPG video frames read as
   packets, are decoded at a reduced DCT scale with ``draft()`` when that still leaves >= 2x
   the target);
2. an image under twice the model input on both axes (the demo's 256 px parts,
   ../shared/realdata, most training sets) is resized with Pillow's antialiased
   bilinear, exactly as before issue 18 (byte-identical: models trained earlier keep
   their pixels; benchmarks/preprocess_change.py measures it);
3. a larger one (camera frames) is box-halved per axis (2x2 / 2x1 mean, rounded half
   up) while that axis is at least twice the target, an exact integer reduction
   that reads every pixel once, then finished with a 2-tap bilinear (half-pixel
   centres, Q8 weights, one rounding: OpenCV's ``INTER_LINEAR_EXACT``); from under
   2x no pixel is skipped. Stretching, never cropping, so that a defect at the
   border is never cut away. OpenCV computes it when installed (1080p in ~0.75 ms,
   was ~8 ms); without it Pillow's ``reduce`` and a NumPy copy of the same integer
   arithmetic do, bit-identically (tests/unit/test_preprocess_resize.py), so a
   device without OpenCV sees what a workstation with it trained on;
4. nothing else on the host: scaling to the backbone's range (x/127.5 - 1) is
   a layer inside the model graph, so a deployed model takes raw uint8 pixels.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

ASPECT = "stretch"  # the whole field of view, never a crop (camera sources rely on it)
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


def halvings(height, width, size):
    """How many times each axis is box-halved before the final bilinear step: (ny, nx)."""
    h, w = as_hw(size)
    ny = nx = 0
    while height >= 2 * h:
        height //= 2
        ny += 1
    while width >= 2 * w:
        width //= 2
        nx += 1
    return ny, nx


def _cv2():
    global _CV2
    if _CV2 is None:
        try:
            import cv2
        except ImportError:  # opencv is the camera extra, not a requirement
            cv2 = False
        _CV2 = cv2
    return _CV2


_CV2 = None


def _halve(a: np.ndarray, ny: int, nx: int, cv2) -> np.ndarray:
    """Box-halve ``a`` ny times vertically, nx times horizontally; an odd last row/column is dropped.

    OpenCV's bilinear at exactly 1/2 samples between pixel centres, i.e. the rounded 2x2 mean,
    which is what Pillow's ``reduce`` computes (its 11-bit weights are 1/2 exactly, so the fixed-point
    sum is exact). INTER_LINEAR rather than _EXACT here: the same bits, 1.7x faster on a 2x1 step.
    """
    img = None
    while ny or nx:
        fy, fx = (2 if ny else 1), (2 if nx else 1)
        if cv2:
            h, w = a.shape[0] // fy, a.shape[1] // fx
            a = cv2.resize(a[:h * fy, :w * fx], (w, h), interpolation=cv2.INTER_LINEAR)
        else:
            img = Image.fromarray(a) if img is None else img
            w, h = img.size[0] // fx, img.size[1] // fy
            img = img.reduce((fx, fy), box=(0, 0, w * fx, h * fy))
        ny, nx = max(ny - 1, 0), max(nx - 1, 0)
    return a if img is None else np.asarray(img)


def _taps(n_in, n_out):
    """Source indices and Q8 weights of OpenCV's INTER_LINEAR_EXACT along one axis."""
    f = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(f).astype(np.intp)
    frac = f - i0
    low, high = i0 < 0, i0 >= n_in - 1
    frac[low | high] = 0.0
    i0[low], i0[high] = 0, n_in - 1
    w1 = np.rint(frac * 256).astype(np.uint32)
    return i0, np.minimum(i0 + 1, n_in - 1), 256 - w1, w1


def _bilinear(a: np.ndarray, h: int, w: int, cv2) -> np.ndarray:
    if cv2:
        # OpenCV's bit-exact resize has SIMD kernels for 1, 2 and 4 channels, not 3: via RGBA the
        # same bits come ~1.9x faster (0.14 vs 0.26 ms for 240x270 -> 224, the conversions 0.01 ms),
        # the largest single step left in a 1080p frame after the first box-halving.
        if a.shape[2] == 3:
            a4 = cv2.resize(cv2.cvtColor(a, cv2.COLOR_RGB2RGBA), (w, h), interpolation=cv2.INTER_LINEAR_EXACT)
            return cv2.cvtColor(a4, cv2.COLOR_RGBA2RGB)
        return cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR_EXACT)
    x0, x1, a0, a1 = _taps(a.shape[1], w)
    y0, y1, b0, b1 = _taps(a.shape[0], h)
    s = a.astype(np.uint32)
    row = s[:, x0] * a0[None, :, None] + s[:, x1] * a1[None, :, None]  # exact: Q8
    out = row[y0] * b0[:, None, None] + row[y1] * b1[:, None, None]  # exact: Q16
    return ((out + (1 << 15)) >> 16).astype(np.uint8)


def to_model_input(image, size, use_opencv=None, bgr=False) -> np.ndarray:
    """RGB uint8 image (PIL or HxWx3 array) -> uint8 array of shape (h, w, 3), RGB.

    ``bgr=True``: the array is an OpenCV BGR frame. Every step works per channel, so resizing first and
    swapping the small result gives the same bits as swapping first, without writing and re-reading a
    whole converted frame (1080p: a 6 MB pass, about 1 ms of a camera-paced e2e on this machine).
    ``use_opencv`` (default: when installed) only picks who computes; the pixels are the same.
    """
    h, w = as_hw(size)
    cv2 = _cv2() if use_opencv is None or use_opencv else False
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
        a = image
    elif bgr:
        raise ValueError("bgr=True needs an HxWx3 array (a PIL image is RGB)")
    else:
        image = image if image.mode == "RGB" else image.convert("RGB")
        a = np.asarray(image)
    a = _resize(image, a, h, w, cv2)
    if not bgr:
        return np.ascontiguousarray(a)
    # A channel swap is a copy either way; NumPy's negative-stride copy of a 224x224x3 array takes
    # 0.16 ms against 0.005 ms for cvtColor (the same bytes): a sixth of watch's 1080p preprocess.
    return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2BGR) if cv2 else np.ascontiguousarray(a[..., ::-1])


def _resize(image, a, h, w, cv2):
    if a.shape[:2] == (h, w):
        return a
    ny, nx = halvings(a.shape[0], a.shape[1], (h, w))
    if not (ny or nx):
        img = image if isinstance(image, Image.Image) and image.mode == "RGB" else Image.fromarray(a)
        return np.asarray(img.resize((w, h), Image.BILINEAR, reducing_gap=2.0), dtype=np.uint8)
    a = _halve(a, ny, nx, cv2)
    if a.shape[:2] != (h, w):
        a = _bilinear(a, h, w, cv2)
    return a


def describe(size) -> dict:
    """Preprocessing facts, written next to every run and into model metadata."""
    h, w = as_hw(size)
    return {
        "input_height": h,
        "input_width": w,
        "color": "RGB",
        "dtype": "uint8",
        "resize": "bilinear (Pillow) under 2x the target; else box-halve each axis while >= 2x, then "
                  "2-tap bilinear (INTER_LINEAR_EXACT)",
        "reducing_gap": 2.0,
        "aspect": ASPECT,
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
