"""Where parts come from: a folder a camera writes into, a video file or stream, a camera.

Every source yields :class:`Item` objects one at a time from ``read(stop)``:
``None`` means the source has ended (a video file's last frame); a
:class:`SourceDisconnected` means a live source failed to deliver and should
be reopened (the service retries with back-off). A frame or file that cannot
be decoded is still an ``Item`` (with ``error`` set) so the log accounts for it.

One module per kind: ``folder``, ``video`` (files, streams, cameras through
OpenCV) and ``picamera``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

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


def frame_to_rgb(frame, cv2=None):
    """OpenCV's BGR/BGRA/gray uint8 frame -> HxWx3 RGB, or raise ValueError saying what is wrong."""
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
        return np.ascontiguousarray(frame[..., ::-1])
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.ascontiguousarray(frame[..., 2::-1])
    raise ValueError(f"unsupported frame shape {frame.shape}")


def make_source(spec, existing="process", done=(), poll=0.2, settle_timeout=10.0, size=None, realtime_fps=None,
                keep=(), recursive=False, on_ignored=None):
    """``--source`` string -> a source object (folder, video file, stream URL, camera index, 'picamera')."""
    spec = str(spec)
    if spec == "picamera":
        return PicameraSource()
    if Path(spec).is_dir():
        return FolderSource(spec, existing=existing, done=done, poll=poll, settle_timeout=settle_timeout, size=size,
                            keep=keep, recursive=recursive, on_ignored=on_ignored)
    return VideoSource(spec, realtime_fps=realtime_fps)


# One module per kind; imported last because each uses Item and the errors above.
from edge.watch.sources.folder import FolderSource  # noqa: E402
from edge.watch.sources.picamera import PicameraSource  # noqa: E402
from edge.watch.sources.video import VideoSource  # noqa: E402

__all__ = ["Item", "SourceError", "SourceDisconnected", "FolderSource", "VideoSource", "PicameraSource",
           "make_source", "frame_to_rgb"]
