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


def frame_to_rgb(frame, cv2=None):
    """OpenCV's BGR/BGRA/gray uint8 frame -> HxWx3 RGB, or raise ValueError saying what is wrong.

    With ``cv2`` the swap is ``cvtColor`` (0.3 ms for 1080p; NumPy's strided copy takes ~10x that, on
    the reader thread, for every frame); the pixels are the same.
    """
    if frame is None:
        raise ValueError("empty frame")
    frame = np.asarray(frame)
    if frame.size == 0:
        raise ValueError(f"empty frame {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"unsupported frame dtype {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[..., None], 3, axis=2))
    if frame.ndim == 3 and frame.shape[2] == 3:
        if cv2 and frame.flags.c_contiguous:
            return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(frame[..., ::-1])
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.ascontiguousarray(frame[..., 2::-1])
    raise ValueError(f"unsupported frame shape {frame.shape}")
