"""Let the camera do the resize: picamera2's lores stream at the model size, USB cameras' smallest covering mode.

picamera2 cannot be installed off a Pi, so a stand-in records what the source asks for."""
import threading

import numpy as np
import pytest

from edge.watch.sources import make_source
from edge.watch.sources.picamera import PicameraSource
from edge.watch.sources.video import VideoSource, smallest_covering_mode


class FakePicamera2:
    """Records configurations; ``refuse_lores`` plays a Pi 4, whose lores stream must be YUV420."""

    refuse_lores = False
    made = []

    def __init__(self):
        self.asked, self.captured, self.config = [], [], None
        FakePicamera2.made.append(self)

    def create_video_configuration(self, main, lores=None):
        self.asked.append({"main": main, "lores": lores})
        return {"main": main, "lores": lores}

    def configure(self, config):
        if config["lores"] is not None and self.refuse_lores:
            raise RuntimeError("lores stream must be YUV")
        self.config = config

    def start(self):
        pass

    def capture_array(self, stream):
        self.captured.append(stream)
        w, h = self.config[stream]["size"]
        return np.zeros((h, w, 3), np.uint8)

    def stop(self):
        pass

    def close(self):
        pass


def test_picamera_asks_the_isp_for_the_model_input_size():
    src = PicameraSource(model_size=(224, 160), picamera2=FakePicamera2)
    item = src.read(threading.Event())
    cam = FakePicamera2.made[-1]
    assert cam.asked == [{"main": {"format": "RGB888", "size": (640, 480)},
                          "lores": {"format": "RGB888", "size": (160, 224)}}]
    assert cam.captured == ["lores"] and src.stream == "lores" and item.rgb.shape == (224, 160, 3)


def test_picamera_without_rgb_lores_falls_back_to_the_main_stream(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "refuse_lores", True)
    src = PicameraSource(model_size=224, picamera2=FakePicamera2)
    item = src.read(threading.Event())
    cam = FakePicamera2.made[-1]
    assert [a["lores"] for a in cam.asked] == [{"format": "RGB888", "size": (224, 224)}, None]
    assert src.stream == "main" and cam.captured == ["main"] and item.rgb.shape == (480, 640, 3)


def test_make_source_passes_the_model_size():
    assert make_source("picamera", size=(96, 96)).model_size == (96, 96)


class FakeCap:
    """A V4L2-like camera: answers a requested size with its nearest supported mode."""

    W, H = 3, 4  # cv2.CAP_PROP_FRAME_WIDTH / HEIGHT

    def __init__(self, modes, current):
        self.modes, self.size, self.sets = modes, current, []
        self._want = list(current)

    def set(self, prop, value):
        self.sets.append((prop, value))
        self._want[0 if prop == self.W else 1] = value
        if prop == self.H:  # snap to the nearest mode once both are set
            self.size = min(self.modes, key=lambda m: abs(m[0] - self._want[0]) + abs(m[1] - self._want[1]))

    def get(self, prop):
        return self.size[0] if prop == self.W else self.size[1]


cv2_props = type("cv2", (), {"CAP_PROP_FRAME_WIDTH": 3, "CAP_PROP_FRAME_HEIGHT": 4})


def test_usb_camera_gets_the_smallest_mode_that_covers_the_model_input():
    cap = FakeCap([(160, 120), (640, 480), (1920, 1080)], (1920, 1080))
    assert smallest_covering_mode(cap, cv2_props, (224, 224), VideoSource.CAMERA_MODES) == (640, 480)
    assert cap.size == (640, 480)
    assert (3, 320) in cap.sets  # it asked for 320x240 first; the driver offered 160x120, too small


def test_camera_without_a_covering_mode_keeps_its_own():
    cap = FakeCap([(1920, 1080)], (1920, 1080))
    assert smallest_covering_mode(cap, cv2_props, (2000, 3000), VideoSource.CAMERA_MODES) is None
    assert cap.size == (1920, 1080)

