"""The model file the service runs: load it, and notice when it is replaced (inode/mtime/size).

The watcher thread loads a replacement off the inspection loop and parks it
in ``pending``; the loop swaps it in between two items (:meth:`take`), so no
item is inspected half by one model. A replacement that fails to load is
reported once per file version and the old model keeps running.
"""
from __future__ import annotations

import hashlib
import os
import threading


def file_sig(path):
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load_model(path, backend=None, threads=None, device=None, labels=None):
    """-> (EdgeModel warmed up, sha256[:12] of the bytes it runs, file signature).

    The model runs from its bytes in memory, and the hash is of those same bytes:
    a file rewritten in place while we run changes neither the answers nor the
    name in the log until the watcher loads the new version.
    """
    from edge.runtime import EdgeModel

    sig = file_sig(path) if os.path.exists(path) else None  # before reading: a later change is seen as one
    m = EdgeModel(path, backend=backend, threads=threads, device=device, labels=labels)
    m.warmup()
    return m, hashlib.sha256(m.content).hexdigest()[:12], sig


class ModelWatcher:
    def __init__(self, path, load, interval, on_failure, sig):
        self.path = path
        self._load = load              # () -> (model, sha, sig)
        self.interval = interval
        self._on_failure = on_failure  # (exc) -> None
        self._sig = sig                # of the model in use
        self.pending = None
        self._failed_sig = None

    def run(self, stop: threading.Event):
        while not stop.wait(self.interval):
            try:
                sig = file_sig(self.path)
            except OSError:
                continue  # mid-replacement, or removed: keep the loaded model
            if sig == self._sig or sig == self._failed_sig or self.pending is not None:
                continue
            try:
                loaded = self._load()
            except Exception as exc:  # ModelError, BackendError, or a half-written flatbuffer
                self._failed_sig = sig
                self._on_failure(exc)
                continue
            self.pending = loaded

    def take(self):
        """The loaded replacement (model, sha, sig) to swap in now, or None."""
        pending, self.pending = self.pending, None
        if pending is not None:
            self._sig = pending[2]
        return pending
