"""A folder a camera writes image files into."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from edge.errors import ImageError
from edge.imageio import IMAGE_EXTENSIONS, is_image_path, load_image
from edge.watch.sources.base import Item, SourceDisconnected, SourceError


class FolderSource:
    """New image files in a folder (and its subfolders with ``recursive``), once each, in arrival order.

    Anything else there (other files, subfolders when not recursive, unreadable
    subfolders) is reported once through ``on_ignored(path, why)``.

    A file counts as complete when its size is the same on two polls and it
    decodes; one that never gets there within ``settle_timeout`` seconds of
    its last change is reported as an error item, never skipped silently.

    A file is one *version*: (path, inode, size, mtime_ns). A camera that
    reuses a name (``part.png`` overwritten with the next part) makes a new
    version, which is inspected again. ``done`` maps paths already handled
    (from the result log) to the version handled (None: any version), so a
    restart does not inspect them again; ``keep`` holds paths the previous run
    left unfinished, which are inspected even with ``existing="skip"``.
    """

    kind = "folder"
    live = False
    resumable = True  # items are files that stay on disk: unfinished ones are left for the next run

    def __init__(self, folder, existing="process", done=(), poll=0.2, settle_timeout=10.0, size=None, keep=(),
                 recursive=False, on_ignored=None):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise SourceError(f"{folder}: no such folder; create it or point --source at the camera's output folder")
        if existing not in ("process", "skip"):
            raise ValueError(f"existing must be 'process' or 'skip', got {existing!r}")
        self.existing = existing
        self.poll = float(poll)
        self.settle_timeout = float(settle_timeout)
        self.size = size  # decode at the model's input size (JPEG draft makes that cheap)
        self.recursive = recursive
        self.on_ignored = on_ignored or (lambda path, why: None)  # once per path: nothing is skipped silently
        self._ignored = set()
        self.id = str(self.folder)
        done = done if isinstance(done, dict) else dict.fromkeys(done)
        self._keep = set(keep)
        # path -> version handled (or skipped), None when unknown; pruned to what is on disk
        self._seen = {p: v for p, v in done.items() if p not in self._keep}
        self._pending = {}  # path -> [version, last_change_monotonic]
        self._ready = []
        self.skipped_existing = 0
        self._started = False

    def open(self):
        if self._started:
            return
        self._started = True
        present = self._listing()
        if self.existing == "skip":
            new = {p: v for p, v in present.items() if not self._handled(p, v) and p not in self._keep}
            self.skipped_existing = len(new)
            self._seen.update(new)

    def close(self):
        pass

    def _listing(self):
        out, ignored = {}, {}
        folders = [self.folder]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError as exc:
                if folder == self.folder:
                    raise SourceDisconnected(f"{self.folder}: cannot list folder ({exc.strerror or exc})") from None
                why = "Permission denied; check its permissions" if isinstance(exc, PermissionError) else exc.strerror
                ignored[str(folder)] = f"cannot read folder ({why})"
                continue
            for e in entries:
                if e.name.startswith("."):
                    continue  # writers' temp files (atomic rename comes later), hidden folders
                try:
                    if e.is_dir():
                        if self.recursive:
                            folders.append(Path(e.path))
                        else:
                            ignored[e.path] = "a subfolder (use --recursive to watch subfolders too)"
                        continue
                    if not e.is_file():
                        continue
                    if not is_image_path(e.name):
                        ignored[e.path] = f"not an image extension ({', '.join(IMAGE_EXTENSIONS)})"
                        continue
                    st = e.stat()
                except OSError:
                    continue  # vanished between listing and stat
                out[e.path] = (st.st_ino, st.st_size, st.st_mtime_ns)
        self._report_ignored(ignored)
        return out

    def _report_ignored(self, ignored):
        for p in [p for p in self._ignored if p not in ignored]:
            self._ignored.discard(p)  # gone: say it again if it comes back
        for p, why in sorted(ignored.items()):
            if p not in self._ignored:
                self._ignored.add(p)
                self.on_ignored(p, why)

    def _handled(self, path, version):
        if path not in self._seen:
            return False
        seen = self._seen[path]
        return seen is None or tuple(seen) == version

    def _scan(self):
        now = time.monotonic()
        listing = self._listing()
        for p in [p for p in self._seen if p not in listing]:
            del self._seen[p]  # forget deleted files: memory stays bounded by the folder
        for p in list(self._pending):
            if p not in listing:
                del self._pending[p]
        became_ready = []
        for p, version in listing.items():
            if self._handled(p, version):
                continue
            st = self._pending.get(p)
            if st is None or st[0] != version:
                self._pending[p] = [version, now]
                continue
            # The same version as on the previous poll: try to decode.
            mtime = version[2]
            item = Item(source_id=p, path=p, version=version)
            try:
                item.rgb = load_image(p, self.size, refuse_tiny=self.size is not None)
            except ImageError as exc:
                if getattr(exc, "final", False):
                    item.error = str(exc)  # complete, but unusable: waiting will not help
                elif now - st[1] < self.settle_timeout:
                    continue  # probably still being written; wait for the next poll
                else:
                    item.error = f"{exc} (incomplete after {self.settle_timeout:g} s)"
            item.t_in = time.monotonic()
            became_ready.append((mtime, os.path.basename(p), item))
            del self._pending[p]
            self._seen[p] = version
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

    def known(self):
        """Paths handled or skipped that were still on disk at the last scan."""
        return set(self._seen)

    def unfinished(self):
        """Files found but not delivered yet (still settling, or ready): the next run must inspect them."""
        return sorted(self._pending) + [i.path for i in self._ready]
