"""A folder a camera writes image files into."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from edge.errors import ImageError
from edge.imageio import is_image_path, load_image
from edge.watch.sources import Item, SourceDisconnected, SourceError


class FolderSource:
    """New image files in a folder, once each, in arrival order (mtime, then name).

    A file counts as complete when its size is the same on two polls and it
    decodes; one that never gets there within ``settle_timeout`` seconds of
    its last change is reported as an error item, never skipped silently.
    ``done`` holds paths already handled (from the result log) so a restart
    does not inspect them again; ``keep`` holds paths the previous run left
    unfinished, which are inspected even with ``existing="skip"``.
    """

    kind = "folder"
    live = False
    resumable = True  # items are files that stay on disk: unfinished ones are left for the next run

    def __init__(self, folder, existing="process", done=(), poll=0.2, settle_timeout=10.0, size=None, keep=()):
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
        self._seen = set(done) - set(keep)  # absolute paths handled (or skipped); pruned to what is on disk
        self._keep = set(keep)
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
            new = [p for p in present if p not in self._seen and p not in self._keep]
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
                item.rgb = load_image(p, self.size, refuse_tiny=self.size is not None)
            except ImageError as exc:
                if getattr(exc, "final", False):
                    item.error = str(exc)  # complete, but unusable: waiting will not help
                elif now - st[2] < self.settle_timeout:
                    continue  # probably still being written; wait for the next poll
                else:
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

    def unfinished(self):
        """Files found but not delivered yet (still settling, or ready): the next run must inspect them."""
        return sorted(self._pending) + [i.path for i in self._ready]
