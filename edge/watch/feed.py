"""The reader thread and the bounded queue between the source and the inspection loop.

The reader pulls items at the source's pace, so a camera is never starved.
When the queue is full, ``drop="oldest"`` discards the oldest queued frame (a
live camera wants the newest part) and ``drop="none"`` makes the reader wait
(folders and video files lose nothing by waiting). A source that fails is
closed and reopened with exponential back-off; each failure is an event.
"""
from __future__ import annotations

import threading
import time
from collections import deque

from edge.watch.sources import SourceDisconnected, SourceError


class Feed:
    def __init__(self, source, qmax, drop, stop, retry_initial, retry_max, on_dropped, event, count):
        self.source = source
        self.qmax = max(1, int(qmax))
        self.drop = drop
        self.stop = stop
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self._on_dropped, self._event, self._count = on_dropped, event, count
        self.q = deque()
        self.cond = threading.Condition()
        self.done = threading.Event()
        self.fatal = None  # a SourceError from the reader, re-raised by the loop

    def __len__(self):
        return len(self.q)

    def wake(self):
        with self.cond:
            self.cond.notify_all()

    def put(self, item):
        dropped = None
        with self.cond:
            while len(self.q) >= self.qmax and self.drop == "none" and not self.stop.is_set():
                self.cond.wait(0.1)
            if len(self.q) >= self.qmax and self.drop == "oldest":
                dropped = self.q.popleft()
            self.q.append(item)
            self.cond.notify_all()
        if dropped is not None:
            self._on_dropped(dropped, f"queue full ({self.qmax}): inference slower than the source")

    def get(self, timeout=0.2):
        with self.cond:
            if not self.q and not self.done.is_set():
                self.cond.wait(timeout)
            if self.q:
                item = self.q.popleft()
                self.cond.notify_all()
                return item
        return None

    def take_all(self):
        with self.cond:
            left, self.q = list(self.q), deque()
        return left

    def run(self):
        """The reader thread's body."""
        backoff, down_since, src = self.retry_initial, None, self.source
        try:
            while not self.stop.is_set():
                try:
                    item = src.read(self.stop)
                except SourceError as exc:
                    self.fatal = exc
                    self.stop.set()
                    return
                except Exception as exc:  # SourceDisconnected, or anything a camera driver throws
                    msg = str(exc) if isinstance(exc, SourceDisconnected) else f"{type(exc).__name__}: {exc}"
                    self._count("disconnects")
                    if down_since is None:
                        down_since = time.monotonic()
                    self._event("source_disconnected", source=src.id, error=msg, retry_in_s=round(backoff, 3))
                    try:
                        src.close()
                    except Exception:
                        pass
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, self.retry_max)
                    continue
                if item is None:
                    return
                if down_since is not None:
                    self._count("reconnects")
                    self._event("source_reconnected", source=src.id, down_s=round(time.monotonic() - down_since, 3))
                    down_since, backoff = None, self.retry_initial
                self._count("sent")
                self.put(item)
        finally:
            self.done.set()
            self.wake()
