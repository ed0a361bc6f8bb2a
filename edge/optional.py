"""Optional dependencies: imported only by the option that needs them, with one way to say what is missing."""
from __future__ import annotations

import importlib

from edge.errors import EdgeInspectError


def require_optional(module, extra, needed_by, package=None, error=EdgeInspectError):
    """Import ``module`` or raise ``error`` naming what needs it and the extra that installs it.

    ``require_optional("cv2", "camera", "video, stream and camera sources", "OpenCV")`` ->
    "video, stream and camera sources need OpenCV: pip install 'edgeinspect[camera]'".
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        verb = "needs" if needed_by.startswith("--") else "need"
        raise error(f"{needed_by} {verb} {package or module}: pip install 'edgeinspect[{extra}]'") from None
