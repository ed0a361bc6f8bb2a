"""``--rejects DIR``: keep a copy of every rejected part (and its heat map for anomaly models), written atomically.

The folder is laid out for the operator's review: rejects arrive in ``DIR/``; a part found good is
moved into ``DIR/confirmed_good/``, a confirmed defect into ``DIR/confirmed_defect/<type>/``, and
``edgeinspect train --update RUN --add-good DIR --add-defects DIR`` learns from exactly those.
"""
from __future__ import annotations

import io
import os
import re
from datetime import datetime
from pathlib import Path

from edge.atomic import atomic_write_bytes
from edge.watch.sinks import BaseSink

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
REVIEW_FOLDERS = ("confirmed_good", "confirmed_defect")  # read by trainer/update.py


class RejectStore(BaseSink):
    name = "reject"
    before_log = True  # the saved path goes into the record

    def __init__(self, folder, threshold=0.5, on_event=None):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        for sub in REVIEW_FOLDERS:
            (self.folder / sub).mkdir(exist_ok=True)
        self.threshold = threshold  # a number, or a callable giving the current model's threshold
        self.on_event = on_event or (lambda name, **fields: None)
        self.saved = 0
        self.overlays_missing = 0
        self.overlay_error = None

    def _stem(self, item):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        base = os.path.splitext(os.path.basename(item.path))[0] if item.path else item.source_id
        return f"{stamp}_{_UNSAFE.sub('_', base)}"

    def handle(self, record, prediction, item):
        if prediction is not None and prediction.verdict == "defective":
            stem = self._stem(item)
            record["reject"] = str(self.save(item, stem))
            if getattr(prediction, "anomaly_map", None) is not None:
                self._overlay(item, prediction, self.folder / f"{stem}_overlay.png")

    def save(self, item, stem):
        """Write the rejected image; returns its path. Raises OSError on disk trouble."""
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
        self.saved += 1
        return out

    def _overlay(self, item, pred, out):
        try:
            from edge.overlay import save_overlay
        except ImportError as exc:
            # The image itself is saved; say once that heat maps are off and count every missing one.
            self.overlays_missing += 1
            if self.overlay_error is None:
                self.overlay_error = f"heat-map overlays unavailable ({exc}); rejects are saved without them"
                self.on_event("reject_overlay_unavailable", error=self.overlay_error)
            return
        if item.path:  # the queued copy is at model size; the overlay is for people, so use full size
            from edge.imageio import load_image

            rgb = load_image(item.path)
        else:
            rgb = item.rgb
        threshold = self.threshold() if callable(self.threshold) else self.threshold
        save_overlay(rgb, pred.anomaly_map, out, threshold=threshold)

    def summary(self):
        return {"saved": self.saved, "overlays_missing": self.overlays_missing}


def from_config(cfg, ctx):
    if not cfg.rejects:
        return None
    return RejectStore(cfg.rejects, threshold=lambda: getattr(ctx.model(), "threshold", 0.5), on_event=ctx.event)
