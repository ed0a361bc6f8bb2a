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

from pathlib import Path

from edge.watch.sources.base import Item, SourceDisconnected, SourceError, frame_to_rgb
from edge.watch.sources.folder import FolderSource
from edge.watch.sources.picamera import PicameraSource
from edge.watch.sources.video import DECODE_THREADS, VideoSource


def make_source(spec, existing="process", done=(), poll=0.2, settle_timeout=10.0, size=None, realtime_fps=None,
                keep=(), recursive=False, on_ignored=None, decode_threads=DECODE_THREADS):
    """``--source`` string -> a source object (folder, video file, stream URL, camera index, 'picamera')."""
    spec = str(spec)
    if spec == "picamera":
        return PicameraSource(model_size=size)
    if Path(spec).is_dir():
        return FolderSource(spec, existing=existing, done=done, poll=poll, settle_timeout=settle_timeout, size=size,
                            keep=keep, recursive=recursive, on_ignored=on_ignored)
    return VideoSource(spec, realtime_fps=realtime_fps, model_size=size, decode_threads=decode_threads)


__all__ = ["Item", "SourceError", "SourceDisconnected", "FolderSource", "VideoSource", "PicameraSource",
           "make_source", "frame_to_rgb"]
