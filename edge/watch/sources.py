"""Where parts come from: a folder a camera writes into, a video file or stream, a camera.

Every source yields :class:`Item` objects one at a time from ``read(stop)``:
``None`` means the source has ended (a video file's last frame); a
:class:`SourceDisconnected` means a live source failed to deliver and should
be reopened (the service retries with back-off). A frame or file that cannot
be decoded is still an ``Item`` (with ``error`` set) so the log accounts for it.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import EdgeInspectError, ImageError
from edge.imageio import is_image_path, load_image


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


def require_cv2():
    try:
        import cv2
    except ImportError:
        raise SourceError("video, stream and camera sources need OpenCV: pip install 'edgeinspect[camera]'") from None
    return cv2


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


class FolderSource:
    """New image files in a folder, once each, in arrival order (mtime, then name).

    A file counts as complete when its size is the same on two polls and it
    decodes; one that never gets there within ``settle_timeout`` seconds of
    its last change is reported as an error item, never skipped silently.
    ``done`` holds paths already handled (from the result log) so a restart
    does not inspect them again.
    """

    kind = "folder"
    live = False

    def __init__(self, folder, existing="process", done=(), poll=0.2, settle_timeout=10.0, size=None):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise SourceError(f"{folder}: no such folder; create it or point --source at the camera's output folder")
        if existing not in ("process", "skip"):
            raise ValueError(f"existing must be 'process' or 'skip', got {existing!r}")
        self.existing = existing
        self.poll = float(poll)
        self.settle_timeout = float(settle_timeout)
        self.size = size  # decode at the model's input size (JPEG draft makes that cheap)
        self.id = str(self.folder)
        self._seen = set(done)  # absolute paths handled (or skipped); pruned to what is still on disk
        self._pending = {}  # path -> [size, mtime_ns, last_change_monotonic]
        self._ready = []
        self.skipped_existing = 0
        self._started = False

    def open(self):
        if self._started:
            return
        self._started = True
        present = self._listing()
        if self.existing == "skip":
            new = [p for p in present if p not in self._seen]
            self.skipped_existing = len(new)
            self._seen.update(new)

    def close(self):
        pass

    def _listing(self):
        out = {}
        try:
            with os.scandir(self.folder) as it:
                for e in it:
                    if e.name.startswith(".") or not is_image_path(e.name):
                        continue  # dotfiles are writers' temp files (atomic rename comes later)
                    try:
                        if not e.is_file():
                            continue
                        st = e.stat()
                    except OSError:
                        continue  # vanished between listing and stat
                    out[os.path.join(self.id, e.name)] = (st.st_size, st.st_mtime_ns)
        except OSError as exc:
            raise SourceDisconnected(f"{self.folder}: cannot list folder ({exc.strerror or exc})") from None
        return out

    def _scan(self):
        now = time.monotonic()
        listing = self._listing()
        self._seen.intersection_update(listing)  # forget deleted files: memory stays bounded by the folder
        for p in list(self._pending):
            if p not in listing:
                del self._pending[p]
        became_ready = []
        for p, (size, mtime) in listing.items():
            if p in self._seen:
                continue
            st = self._pending.get(p)
            if st is None or st[0] != size or st[1] != mtime:
                self._pending[p] = [size, mtime, now]
                continue
            # Same size and mtime as the previous poll: try to decode.
            item = Item(source_id=p, path=p)
            try:
                item.rgb = load_image(p, self.size)
            except ImageError as exc:
                if now - st[2] < self.settle_timeout:
                    continue  # probably still being written; wait for the next poll
                item.error = f"{exc} (incomplete after {self.settle_timeout:g} s)"
            item.t_in = time.monotonic()
            became_ready.append((mtime, os.path.basename(p), item))
            del self._pending[p]
            self._seen.add(p)
        became_ready.sort(key=lambda t: (t[0], t[1]))
        self._ready.extend(i for _, _, i in became_ready)

    def read(self, stop: threading.Event):
        while not stop.is_set():
            if self._ready:
                return self._ready.pop(0)
            self._scan()
            if not self._ready:
                stop.wait(self.poll)
        return None

    @property
    def pending(self):
        return len(self._pending)


class VideoSource:
    """A video file, a stream URL (rtsp://, http://...) or a camera index, read with OpenCV.

    A file ends at its last frame; an undecodable frame inside it becomes an
    error item. A stream or camera that fails to read raises
    :class:`SourceDisconnected` (the service reopens it with back-off).
    """

    def __init__(self, spec, realtime_fps=None):
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
        self.pos = 0  # frames delivered so far = next frame number (kept across reopen)
        self.fps = None
        self.frame_count = None
        self._t0 = None
        self._bad_run = 0

    def open(self):
        cv2 = require_cv2()
        self.close()
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if self.kind == "video":
                raise SourceError(f"{self.target}: OpenCV cannot open this video; re-encode it (e.g. MJPG .avi or H.264 .mp4)")
            raise SourceDisconnected(f"{self.spec}: cannot open {self.kind}")
        if self.kind == "camera":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # inspect the newest frame, not a stale buffered one
        if self.kind == "video":
            self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if self.pos:
                cap.set(cv2.CAP_PROP_POS_FRAMES, self.pos)
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
        if self.cap is None:
            self.open()
        self._pace(stop)
        ok, frame = self.cap.read()
        t_in = time.monotonic()
        n = self.pos
        if not ok:
            if self.kind != "video":
                raise SourceDisconnected(f"{self.spec}: read failed at frame {n}")
            if self.frame_count and n < self.frame_count - 1 and self._bad_run < 50:
                # An undecodable frame inside the file: account for it and seek past it.
                self._bad_run += 1
                self.pos += 1
                self.cap.set(require_cv2().CAP_PROP_POS_FRAMES, self.pos)
                return Item(source_id=f"{self.prefix}:{n}", t_in=t_in, error=f"{self.id}: frame {n} could not be decoded")
            return None
        self._bad_run = 0
        self.pos += 1
        item = Item(source_id=f"{self.prefix}:{n}", t_in=t_in)
        try:
            item.rgb = frame_to_rgb(frame)
        except ValueError as exc:
            item.error = f"{self.id}: frame {n}: {exc}"
        return item


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


def make_source(spec, existing="process", done=(), poll=0.2, settle_timeout=10.0, size=None, realtime_fps=None):
    """``--source`` string -> a source object (folder, video file, stream URL, camera index, 'picamera')."""
    spec = str(spec)
    if spec == "picamera":
        return PicameraSource()
    if Path(spec).is_dir():
        return FolderSource(spec, existing=existing, done=done, poll=poll, settle_timeout=settle_timeout, size=size)
    return VideoSource(spec, realtime_fps=realtime_fps)
