"""Keep a copy of every rejected part (and its heat map for anomaly models), written atomically."""
from __future__ import annotations

import io
import os
import re
from datetime import datetime
from pathlib import Path

from edge.atomic import atomic_write_bytes

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RejectStore:
    def __init__(self, folder, threshold=0.5):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.threshold = threshold
        self.saved = 0
        self.overlay_error = None

    def _stem(self, item):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        base = os.path.splitext(os.path.basename(item.path))[0] if item.path else item.source_id
        return f"{stamp}_{_UNSAFE.sub('_', base)}"

    def save(self, item, pred, rgb_full=None):
        """Write the rejected image (+ overlay); returns the image path. Raises OSError on disk trouble."""
        stem = self._stem(item)
        if item.path:
            ext = os.path.splitext(item.path)[1].lower() or ".png"
            out = self.folder / f"{stem}{ext}"
            # Copy the camera's original bytes: the reject folder is evidence, not a re-encode.
            atomic_write_bytes(out, Path(item.path).read_bytes())
        else:
            from PIL import Image

            out = self.folder / f"{stem}.png"
            buf = io.BytesIO()
            Image.fromarray(item.rgb).save(buf, format="PNG", compress_level=1)
            atomic_write_bytes(out, buf.getvalue())
        if getattr(pred, "anomaly_map", None) is not None and self.overlay_error is None:
            self._overlay(item, pred, rgb_full, self.folder / f"{stem}_overlay.png")
        self.saved += 1
        return out

    def _overlay(self, item, pred, rgb_full, out):
        try:
            from edge.overlay import save_overlay
        except ImportError as exc:
            self.overlay_error = f"heat-map overlays unavailable ({exc})"
            return
        if rgb_full is not None:
            rgb = rgb_full
        elif item.path:  # the queued copy is at model size; the overlay is for people, so use full size
            from edge.imageio import load_image

            rgb = load_image(item.path)
        else:
            rgb = item.rgb
        save_overlay(rgb, pred.anomaly_map, out, threshold=self.threshold)
