"""What every source shares: the item it yields, its errors and the frame conversion."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge.errors import EdgeInspectError


class SourceError(EdgeInspectError):
    """A --source that cannot be used at all (missing folder, unreadable video file)."""


class SourceDisconnected(Exception):
    """A live source stopped delivering frames; reopen it with back-off."""


@dataclass
class Item:
    source_id: str
    t_in: float = field(default_factory=time.monotonic)  # when the frame/file became available
    rgb: np.ndarray | None = None
    path: str | None = None
    error: str | None = None
    version: tuple | None = None  # a file's (inode, size, mtime_ns): the same name may hold a new part later
    jpeg: bytes | None = None  # an MJPG frame's bytes as the camera sent them (rgb is decoded at a DCT scale)
    # An OpenCV frame as decoded (BGR), instead of ``rgb``: the model swaps channels after its resize, so
    # a 1080p frame is not converted whole on the way (about 1 ms of e2e here); see :meth:`full_rgb`.
    bgr: np.ndarray | None = None

    def full_rgb(self):
        """The whole frame as RGB (None for a file item): converted on first use, for the sinks that keep it."""
        if self.rgb is None and self.bgr is not None:
            from edge.preprocess import _cv2  # OpenCV when installed (cached), else False

            self.rgb = frame_to_rgb(self.bgr, _cv2())
        return self.rgb

    def thumbnail_rgb(self, step):
        """Every ``step``-th pixel of each axis as RGB: a thumbnail without converting the whole frame."""
        a = self.rgb if self.rgb is not None else self.bgr
        if a is None:
            return None
        a = a[::step, ::step]
        return np.ascontiguousarray(a if self.rgb is not None else a[..., ::-1])


def check_frame(frame):
    """An OpenCV frame -> the uint8 array, or raise ValueError saying what is wrong."""
    if frame is None:
        raise ValueError("empty frame")
    frame = np.asarray(frame)
    if frame.size == 0:
        raise ValueError(f"empty frame {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"unsupported frame dtype {frame.dtype}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
        raise ValueError(f"unsupported frame shape {frame.shape}")
    return frame


def set_frame(item, frame, cv2=None):
    """Put an OpenCV frame on ``item``: a 3-channel BGR frame as it is (``item.bgr``), others as RGB."""
    frame = check_frame(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        item.bgr = frame
    else:
        item.rgb = frame_to_rgb(frame, cv2)


def frame_to_rgb(frame, cv2=None):
    """OpenCV's BGR/BGRA/gray uint8 frame -> HxWx3 RGB, or raise ValueError saying what is wrong.

    With ``cv2`` the swap is ``cvtColor`` (0.3 ms for 1080p; NumPy's strided copy takes ~10x that, on
    the reader thread, for every frame); the pixels are the same.
    """
    frame = check_frame(frame)
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[..., None], 3, axis=2))
    if frame.ndim == 3 and frame.shape[2] == 3:
        if cv2 and frame.flags.c_contiguous:
            return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(frame[..., ::-1])
    return np.ascontiguousarray(frame[..., 2::-1])
