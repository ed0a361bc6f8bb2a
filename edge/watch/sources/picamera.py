"""The Raspberry Pi camera through Picamera2."""
from __future__ import annotations

from edge.watch.sources.base import Item, SourceDisconnected, SourceError, frame_to_rgb


class PicameraSource:
    """Raspberry Pi camera through Picamera2 (only on a Pi with picamera2 installed)."""

    kind = "picamera"
    live = True
    prefix = "picamera"
    id = "picamera"

    def __init__(self, size=(640, 480)):
        self.size = size
        self.cam = None
        self.pos = 0

    def open(self):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("--source picamera needs Picamera2: sudo apt install python3-picamera2 (Raspberry Pi OS)") from None
        self.close()
        try:
            cam = Picamera2()
            cam.configure(cam.create_video_configuration(main={"format": "RGB888", "size": tuple(self.size)}))
            cam.start()
        except Exception as exc:  # libcamera raises many types; all mean "not available now"
            raise SourceDisconnected(f"picamera: cannot start ({exc})") from None
        self.cam = cam

    def close(self):
        if self.cam is not None:
            try:
                self.cam.stop()
                self.cam.close()
            except Exception:
                pass
            self.cam = None

    def read(self, stop):
        if self.cam is None:
            self.open()
        try:
            frame = self.cam.capture_array("main")
        except Exception as exc:
            raise SourceDisconnected(f"picamera: capture failed ({exc})") from None
        n, self.pos = self.pos, self.pos + 1
        item = Item(source_id=f"picamera:{n}")
        try:
            item.rgb = frame_to_rgb(frame)  # Picamera2's "RGB888" is BGR in memory, like OpenCV
        except ValueError as exc:
            item.error = f"picamera: frame {n}: {exc}"
        return item
