"""A video file, a stream URL or a camera index, read with OpenCV."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from edge.optional import require_optional
from edge.watch.config import default
from edge.watch.sources.base import Item, SourceDisconnected, SourceError, set_frame

DECODE_THREADS = default("decode_threads")


class VideoSource:
    """A video file, a stream URL (rtsp://, http://...) or a camera index, read with OpenCV.

    A file ends at its last frame; an undecodable frame inside it becomes an
    error item numbered by its place in the stream, and reading goes on. A stream or camera that fails to read raises
    :class:`SourceDisconnected` (the service reopens it with back-off).
    """

    MAX_BAD_RUN = 25  # undecodable frames in a row that end a video file without a usable frame count
    # Capture modes a camera is asked for, smallest first: the first that covers the model input wins
    # (less to transfer, decode and resize). A driver answers with its nearest mode, so each is read back.
    CAMERA_MODES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))

    def __init__(self, spec, realtime_fps=None, model_size=None, decode_threads=DECODE_THREADS):
        self.model_size = model_size
        self.decode_threads = decode_threads  # WatchConfig.decode_threads says why 1
        self.capture_size = None  # (w, h) a camera was set to
        self.spec = str(spec)
        if self.spec.isdigit():
            self.kind, self.target, self.live = "camera", int(self.spec), True
        elif "://" in self.spec:
            self.kind, self.target, self.live = "stream", self.spec, True
        else:
            p = Path(self.spec)
            if not p.is_file():
                raise SourceError(f"{spec}: no such video file, folder or camera; pass a folder, a video file, a stream URL or a camera index")
            self.kind, self.target, self.live = "video", str(p.resolve()), False
        self.id = self.spec if self.kind != "video" else self.target
        self.prefix = "camera" if self.kind == "camera" else "video"
        self.realtime_fps = realtime_fps
        self.cap = None
        self._cv2 = None
        self.pos = 0  # frames delivered so far = next frame number (kept across reopen)
        self.fps = None
        self.frame_count = None
        self._t0 = None
        self._bad_run = 0
        self._failed, self._backlog = [], []  # undecodable frames waiting for proof they were inside the file
        self.jpeg_packets = False  # MJPG read as raw packets and decoded here at a DCT scale

    def open(self):
        cv2 = require_optional("cv2", "camera", "video, stream and camera sources", "OpenCV", SourceError)
        self.close()
        self._cv2 = cv2
        # a camera index is read through V4L2, not FFmpeg: no decoder threads to set
        cap = capture(cv2, self.target, None if self.kind == "camera" else self.decode_threads)
        if not cap.isOpened():
            cap.release()
            if self.kind == "video":
                raise SourceError(f"{self.target}: OpenCV cannot open this video; re-encode it (e.g. MJPG .avi or H.264 .mp4)")
            raise SourceDisconnected(f"{self.spec}: cannot open {self.kind}")
        if self.kind == "camera":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # inspect the newest frame, not a stale buffered one
            if self.model_size is not None:
                self.capture_size = smallest_covering_mode(cap, cv2, self.model_size, self.CAMERA_MODES)
        if self.kind == "video":
            self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if self.pos:
                cap.set(cv2.CAP_PROP_POS_FRAMES, self.pos)
        self.jpeg_packets = self.kind != "camera" and self.model_size is not None and jpeg_packets(cap, cv2)
        self.fps = cap.get(cv2.CAP_PROP_FPS) or None
        self._t0 = None  # pacing restarts after a reconnect: a camera does not replay what it missed
        self.cap = cap

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def _pace(self, stop):
        fps = self.realtime_fps if self.realtime_fps and self.realtime_fps > 0 else None
        if fps is None:
            return
        if self._t0 is None:
            self._t0 = time.monotonic() - self.pos / fps
        delay = self._t0 + self.pos / fps - time.monotonic()
        if delay > 0:
            stop.wait(delay)

    def read(self, stop: threading.Event):
        if self._backlog:
            return self._backlog.pop(0)
        if self.cap is None:
            self.open()
        self._pace(stop)
        ok, frame = self.cap.read()
        t_in = time.monotonic()
        n = self.pos
        if not ok:
            if self.kind != "video":
                raise SourceDisconnected(f"{self.spec}: read failed at frame {n}")
            # A failed read has consumed the frame's packet: read on, never seek (seeking an MJPG/H.264
            # file lands on an earlier keyframe and repeats frames). The file has ended past the
            # container's frame count, or after MAX_BAD_RUN failures in a row.
            if (self.frame_count and n >= self.frame_count) or self._bad_run >= self.MAX_BAD_RUN:
                self._failed = []  # without a frame count, failures at the very end were not frames
                return None
            self._bad_run += 1
            self.pos += 1
            bad = Item(source_id=f"{self.prefix}:{n}", t_in=t_in, error=f"{self.id}: frame {n} could not be decoded")
            if self.frame_count:
                return bad
            self._failed.append(bad)  # a corrupt frame only if a good one follows
            return self.read(stop)
        self._bad_run = 0
        self.pos += 1
        item = Item(source_id=f"{self.prefix}:{n}", t_in=t_in)
        if self.jpeg_packets:
            # An MJPG packet, decoded like a JPEG file of the model's size; t_in is when its pixels
            # exist, as for a frame OpenCV decoded.
            from edge.imageio import decode_jpeg

            item.jpeg = frame.tobytes()
            try:
                item.rgb = decode_jpeg(item.jpeg, self.model_size)
            except ValueError as exc:
                item.error = f"{self.id}: frame {n} could not be decoded ({exc})"
            item.t_in = time.monotonic()
        else:
            try:
                set_frame(item, frame, self._cv2)
            except ValueError as exc:
                item.error = f"{self.id}: frame {n}: {exc}"
        if self._failed:
            first, self._backlog, self._failed = self._failed[0], self._failed[1:] + [item], []
            return first
        return item


def capture(cv2, target, decode_threads=None):
    """``cv2.VideoCapture`` of ``target`` with FFmpeg's decoder thread count set (None or 0: left as is).

    FFmpeg's default frame threading decodes the next frames on other threads while read() has
    returned, so on a small machine they take cores from inference, and every frame comes out
    late by the threads' pipeline.
    """
    prop = getattr(cv2, "CAP_PROP_N_THREADS", None)  # OpenCV >= 4.8
    if not decode_threads or prop is None:
        return cv2.VideoCapture(target)
    cap = cv2.VideoCapture(target, cv2.CAP_ANY, [prop, int(decode_threads)])
    if cap.isOpened():
        return cap
    # A backend that refuses the property (a GStreamer-first build, say) must still play the source.
    cap.release()
    return cv2.VideoCapture(target)


def jpeg_packets(cap, cv2) -> bool:
    """Switch an MJPG ``cap`` to raw packets: libjpeg's DCT scaling then decodes a 1080p frame at half
    size for a 224 model (measured: 3.0 against 5.4 ms, and the resize 0.4 against 0.95 ms), the same
    rule a JPEG file gets. False (nothing changed) for other codecs or a backend without raw mode."""
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    name = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).upper()
    if name not in ("MJPG", "JPEG"):
        return False
    return bool(cap.set(cv2.CAP_PROP_FORMAT, -1)) and cap.get(cv2.CAP_PROP_FORMAT) == -1


def smallest_covering_mode(cap, cv2, model_size, modes):
    """Set ``cap`` to the smallest of ``modes`` whose delivered size covers ``model_size`` (h, w);
    -> the (w, h) the camera reports, or None when it ignores the request (kept as it was)."""
    from edge.preprocess import as_hw

    h, w = as_hw(model_size)
    before = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
    for mw, mh in modes:
        if mw < w or mh < h:
            continue
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, mw)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, mh)
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
        if got[0] >= w and got[1] >= h:
            return got
    if before[0] and before[1]:  # nothing listed covers it: back to the camera's own mode
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, before[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, before[1])
    return None
