"""``--rejects DIR``: keep a copy of every rejected part (and its heat map for anomaly models), written atomically.

The folder is laid out for the operator's review: rejects arrive in ``DIR/``; a part found good is
moved into ``DIR/confirmed_good/``, a confirmed defect into ``DIR/confirmed_defect/<type>/``, and
``edgeinspect train --update RUN --add-good DIR --add-defects DIR`` learns from exactly those.

The copy is written by a writer thread, not the inspection loop: two fsyncs and a heat-map render
cost a defective part ~10 ms, which set the line's p95 (soak with every output on: 1.56x the p95
without outputs). The path is chosen and the camera bytes are taken before the result's log line,
so the line names the file it will hold; a write that then fails is a ``sink_error`` line naming
that path, and when the queue is full the loop writes itself (slower, never lost).
"""
from __future__ import annotations

import io
import os
import queue
import re
import threading
from datetime import datetime
from pathlib import Path

from edge.atomic import atomic_write_bytes
from edge.watch.sinks import BaseSink

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
REVIEW_FOLDERS = ("confirmed_good", "confirmed_defect")  # read by trainer/update.py
QUEUE = 64      # rejects waiting for the disk before the loop writes them itself
DRAIN_S = 30.0  # how long close() waits for queued copies


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
        self.failed = 0
        self.overlays_missing = 0
        self.overlay_error = None
        self._jobs = queue.Queue(maxsize=QUEUE)
        self._writer = threading.Thread(target=self._drain, name="reject-writer", daemon=True)
        self._writer.start()

    def _stem(self, item):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        base = os.path.splitext(os.path.basename(item.path))[0] if item.path else item.source_id
        return f"{stamp}_{_UNSAFE.sub('_', base)}"

    def handle(self, record, prediction, item):
        if prediction is not None and prediction.verdict == "defective":
            stem = self._stem(item)
            jpeg = getattr(item, "jpeg", None)  # an MJPG frame as the camera sent it (full size)
            ext = (os.path.splitext(item.path)[1].lower() or ".png") if item.path else ".jpg" if jpeg else ".png"
            out = self.folder / (stem + ext)
            # The camera's original bytes, read now: the source file may be moved once its line is logged.
            data = Path(item.path).read_bytes() if item.path else jpeg
            amap = getattr(prediction, "anomaly_map", None)
            threshold = self.threshold() if callable(self.threshold) else self.threshold
            job = (out, data, None if data is not None else _full_rgb(item), amap, threshold, stem)
            record["reject"] = str(out)
            try:
                self._jobs.put_nowait(job)
            except queue.Full:  # the disk is slower than the line: write here rather than drop the evidence
                self._write(job)

    def _drain(self):
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                try:
                    self._write(job)
                except Exception as exc:  # noqa: BLE001 - one failed copy must not end the writer
                    self.failed += 1
                    self.on_event("sink_error", sink=self.name, during="write", path=str(job[0]),
                                  error=f"{type(exc).__name__}: {exc}")
            finally:
                self._jobs.task_done()

    def _write(self, job):
        out, data, rgb, amap, threshold, stem = job
        if data is None:
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
            data = buf.getvalue()
        # The camera's bytes as they came: the reject folder is evidence, not a re-encode.
        atomic_write_bytes(out, data)
        self.saved += 1
        if amap is not None:
            self._overlay(out if rgb is None else rgb, amap, threshold, self.folder / f"{stem}_overlay.png")

    def _overlay(self, source, amap, threshold, out):
        try:
            from edge.overlay import save_overlay
        except ImportError as exc:
            # The image itself is saved; say once that heat maps are off and count every missing one.
            self.overlays_missing += 1
            if self.overlay_error is None:
                self.overlay_error = f"heat-map overlays unavailable ({exc}); rejects are saved without them"
                self.on_event("reject_overlay_unavailable", error=self.overlay_error)
            return
        if isinstance(source, Path):  # the queued frame is at model size; people want the full-size copy
            from edge.imageio import load_image

            source = load_image(source)
        save_overlay(source, amap, out, threshold=threshold)

    def close(self, timeout=DRAIN_S):
        """Finish the queued copies (at most ``timeout`` seconds); any left are counted as unsaved."""
        if self._writer.is_alive():
            self._jobs.put(None)
            self._writer.join(timeout)
        left = self._jobs.qsize()
        if left:
            self.on_event("sink_error", sink=self.name, during="close",
                          error=f"{left} reject copies still queued after {timeout:g} s; not saved")
        self.unsaved = left

    def summary(self):
        return {"saved": self.saved, "failed": self.failed, "unsaved": getattr(self, "unsaved", 0),
                "overlays_missing": self.overlays_missing}


def from_config(cfg, ctx):
    if not cfg.rejects:
        return None
    return RejectStore(cfg.rejects, threshold=lambda: getattr(ctx.model(), "threshold", 0.5), on_event=ctx.event)


def _full_rgb(item):
    full = getattr(item, "full_rgb", None)
    return full() if full is not None else getattr(item, "rgb", None)
