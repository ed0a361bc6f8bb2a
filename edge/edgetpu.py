"""The Edge TPU: libedgetpu's delegate, device options, and the CPU twin of a compiled model."""
from __future__ import annotations

import platform
from pathlib import Path

from edge.errors import ModelError

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(
    platform.system(), "libedgetpu.so.1"
)
EDGETPU_INSTALL_HINT = (
    "install the Edge TPU runtime: add Coral's apt repo (https://coral.ai/software/#debian-packages) and "
    "'sudo apt-get install libedgetpu1-std', then plug in the Edge TPU; an _edgetpu.tflite model only runs "
    "through that delegate"
)


class EdgeTPUError(ModelError):
    """An Edge TPU-compiled model without a usable Edge TPU delegate and no CPU twin."""


class EdgeTPUFallbackWarning(UserWarning):
    """An Edge TPU model was replaced by its CPU int8 twin."""


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def edgetpu_delegate_options(device=None):
    """``--device usb|pci|usb:0|pci:1|:0`` -> the options dict libedgetpu understands."""
    if device in (None, "", "auto"):
        return {}
    return {"device": str(device)}


def load_edgetpu_delegate(backend: BackendModule, device=None):
    """Load libedgetpu's delegate or raise EdgeTPUError with why."""
    try:
        # Probe with ctypes first: a failed load inside load_delegate leaves a half-built Delegate
        # whose __del__ prints a traceback.
        import ctypes

        ctypes.CDLL(EDGETPU_LIBRARY)
        return backend.load_delegate(EDGETPU_LIBRARY, edgetpu_delegate_options(device))
    except (ValueError, OSError, RuntimeError, AttributeError) as exc:
        where = f" for device {device!r}" if device else ""
        raise EdgeTPUError(f"cannot load the Edge TPU delegate {EDGETPU_LIBRARY}{where} ({_one_line(exc)})") from None


def cpu_twin(path):
    """``X_edgetpu.tflite`` -> ``X.tflite`` (what edgetpu_compiler was given), if it exists."""
    p = Path(path)
    if not p.stem.endswith("_edgetpu"):
        return None
    twin = p.with_name(p.stem[: -len("_edgetpu")] + p.suffix)
    return twin if twin.is_file() else None
