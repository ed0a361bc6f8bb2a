"""Decode any image a plant camera may produce into RGB uint8, or say why not.

Grayscale, palette, CMYK, RGBA (composited on black), 16-bit and float images
are converted; corrupt, truncated, empty and non-image files raise
:class:`edge.errors.ImageError` with a one-line message naming the file.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edge.errors import ImageError
from edge.preprocess import as_hw, to_model_input

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
# Inference refuses an image whose side is under 1/TINY_FRACTION of the model's input: upscaling a
# thumbnail (or a 1x1 pixel) to the input size invents the part it is asked to judge.
TINY_FRACTION = 8


class ImageTooSmall(ImageError):
    """An image far smaller than the model input (a final answer: waiting will not fix it)."""

    final = True


def check_not_tiny(name, width, height, size):
    h, w = as_hw(size)
    if width * TINY_FRACTION < w or height * TINY_FRACTION < h:
        need_w, need_h = -(-w // TINY_FRACTION), -(-h // TINY_FRACTION)
        raise ImageTooSmall(name, f"image is {width}x{height} px, far smaller than the model input {w}x{h}",
                            f"inspect images of at least {need_w}x{need_h} px, ideally {w}x{h} or larger")


def is_image_path(path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if arr.dtype.kind == "f":
            # Float images come as 0..1, 0..255 or 0..65535; pick the smallest range that fits.
            peak = float(np.nanmax(arr, initial=0.0))
            top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
            arr = np.nan_to_num(arr) / top * 255.0
        else:
            # 16-bit sensors: map the full 16-bit range onto 8 bits.
            top = 255.0 if int(arr.max(initial=0)) <= 255 else 65535.0
            arr = arr.astype(np.float64) * (255.0 / top)
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _draft(img: Image.Image, size):
    """Ask a JPEG for the smallest DCT scale that still leaves >= 2x ``size``: the same rule for files,
    video frames and training images, so what the line sees is what the model was taught on."""
    if size is not None and img.format == "JPEG":
        h, w = as_hw(size)
        # DCT scaling to >= 2x target keeps quality and makes big JPEGs cheap.
        img.draft("RGB", (2 * w, 2 * h))


def decode_jpeg(data: bytes, size) -> np.ndarray:
    """One encoded JPEG frame (an MJPG video packet) -> HxWx3 uint8 RGB at the DCT scale ``open_image``
    uses for a JPEG file of that size; ``ValueError`` saying why when the bytes are not a JPEG."""
    buf = bytes(data)
    if len(buf) < 4 or buf[:2] != b"\xff\xd8":
        raise ValueError(f"not a JPEG frame ({len(buf)} bytes)")
    try:
        img = Image.open(io.BytesIO(buf))
        _draft(img, size)
        img.load()
        return np.asarray(_to_rgb(img), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"corrupt JPEG frame ({reason})") from None


def open_image(path, size=None) -> Image.Image:
    """Open ``path`` as an RGB PIL image; with ``size``, JPEG decode uses draft()."""
    path = os.fspath(path)
    try:
        if os.path.getsize(path) == 0:
            raise ImageError(path, "empty file (0 bytes)", "the camera may still be writing it, or the copy failed")
    except OSError as exc:
        raise ImageError(path, f"cannot read: {exc.strerror or exc}", "check the path and permissions") from None
    if not os.access(path, os.R_OK):
        raise ImageError(path, "cannot read: Permission denied", "check the file's permissions")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            _draft(img, size)
            img.load()
            img = ImageOps.exif_transpose(img) if "exif" in img.info else img
            return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(path, "not an image Pillow can read", "use PNG, JPEG, BMP or TIFF") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(path, "image too large to decode safely", "downscale it before inspection") from None
    except PermissionError:
        raise ImageError(path, "cannot read: Permission denied", "check the file's permissions") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(path, f"corrupt or truncated image ({reason})", "re-save or re-capture the file") from None


def load_image(path, size=None, refuse_tiny=False) -> np.ndarray:
    """Decode ``path`` to an HxWx3 uint8 RGB array, resized to ``size`` if given.

    ``refuse_tiny`` (inference, not training): raise :class:`ImageTooSmall` for an
    image far smaller than ``size`` instead of upscaling it.
    """
    img = open_image(path, size)
    if refuse_tiny and size is not None:
        check_not_tiny(os.fspath(path), img.size[0], img.size[1], size)
    if size is not None:
        return to_model_input(img, size)
    return np.asarray(img, dtype=np.uint8)
