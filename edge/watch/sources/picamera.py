"""The Raspberry Pi camera through Picamera2.

With the model's input size known, the ISP scales a second ``lores`` stream to exactly that size,
so no CPU resize is left: its scaler maps the whole field of view onto the stream (a stretch, like
``edge.preprocess``, which never crops). A camera stack that refuses an RGB lores stream (older
Pis give lores in YUV420 only) gets the main stream alone, resized on the CPU as before.
"""
from __future__ import annotations

from edge.preprocess import ASPECT, as_hw

from edge.watch.sources.base import Item, SourceDisconnected, SourceError, frame_to_rgb


class PicameraSource:
    """Raspberry Pi camera through Picamera2 (only on a Pi with picamera2 installed)."""

    kind = "picamera"
    live = True
    prefix = "picamera"
    id = "picamera"

    def __init__(self, size=(640, 480), model_size=None, picamera2=None):
        self.size = size
        self.model_size = as_hw(model_size) if model_size is not None else None
        self._picamera2 = picamera2  # the Picamera2 class (tests pass a stand-in)
        self.cam = None
        self.pos = 0
        self.stream = "main"  # which stream frames come from ("lores": ISP-scaled to the model input)

    def _configure(self, cam):
        main = {"format": "RGB888", "size": tuple(self.size)}
        if self.model_size is not None and ASPECT == "stretch":
            h, w = self.model_size
            try:
                cam.configure(cam.create_video_configuration(main=main, lores={"format": "RGB888", "size": (w, h)}))
                self.stream = "lores"
                return
            except Exception:  # noqa: BLE001 - e.g. "lores stream must be YUV" on a Pi 4
                pass
        cam.configure(cam.create_video_configuration(main=main))
        self.stream = "main"

    def open(self):
        try:
            Picamera2 = self._picamera2
            if Picamera2 is None:
                from picamera2 import Picamera2
        except ImportError:
            raise SourceError("--source picamera needs Picamera2: sudo apt install python3-picamera2 (Raspberry Pi OS)") from None
        self.close()
        try:
            cam = Picamera2()
            self._configure(cam)
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
            frame = self.cam.capture_array(self.stream)
        except Exception as exc:
            raise SourceDisconnected(f"picamera: capture failed ({exc})") from None
        n, self.pos = self.pos, self.pos + 1
        item = Item(source_id=f"picamera:{n}")
        try:
            item.rgb = frame_to_rgb(frame)  # Picamera2's "RGB888" is BGR in memory, like OpenCV
        except ValueError as exc:
            item.error = f"picamera: frame {n}: {exc}"
        return item
