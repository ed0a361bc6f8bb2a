"""Append-only JSONL result log with size rotation.

Every line is flushed and fsync'd before the next item, so a power cut loses
at most the line being written. Rotation renames files (``log.jsonl`` ->
``log.jsonl.1`` -> ``log.jsonl.2`` ...) between lines, never copies, so no
line is lost or written twice. Readers (restart memory, the soak benchmark)
walk the rotated files oldest first.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from edge.atomic import utc_stamp
from edge.errors import EdgeInspectError


class LogError(EdgeInspectError):
    """The result log cannot be opened or written."""


def now_iso() -> str:
    return utc_stamp(ms=True)


def _default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def log_files(path) -> list[Path]:
    """The log and its rotated siblings, oldest first."""
    path = Path(path)
    rotated = []
    for p in path.parent.glob(path.name + ".*"):
        suffix = p.name[len(path.name) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def read_log(path):
    """Yield every record of the log (rotated files first); a torn last line is skipped."""
    for p in log_files(path):
        with open(p, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    # Only a crash mid-write leaves a partial line; it carries no complete result.
                    continue


def history(log_path):
    """From a previous run's log: ({path: file version handled, or None when the line has none},
    paths queued or still settling at the last stop and not handled since)."""
    done, carry = {}, set()
    if not log_path:
        return done, carry
    for rec in read_log(log_path):
        src = rec.get("source")
        if rec.get("status") in ("ok", "error") and src:
            version = rec.get("file_version")
            done[src] = tuple(version) if version else None
            carry.discard(src)
        elif rec.get("event") == "stop":
            carry.update(rec.get("pending") or [])
        elif rec.get("event") == "checkpoint":  # the memory of lines rotated away
            for p, v in (rec.get("done") or {}).items():
                done.setdefault(p, tuple(v) if v else None)
    return done, carry - set(done)


class JsonlLog:
    """Thread-safe append-only JSONL writer; ``max_bytes`` 0 disables rotation."""

    def __init__(self, path, max_bytes=10 * 1024 * 1024, keep=5, fsync=True):
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.keep = max(1, int(keep))
        self.fsync = fsync
        self.lines = 0
        self.rotations = 0
        self.on_rotate = None  # () -> record written first in each new file (the restart memory)
        self._floor = 0        # bytes of that record: rotate again only after real lines
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "ab")
        except OSError as exc:
            raise LogError(f"{self.path}: cannot open the result log ({exc.strerror or exc}); check --log and permissions") from None
        self._size = self._f.tell()
        self._repair_torn_tail()

    def _repair_torn_tail(self):
        # A crash mid-line would glue the next record onto the torn one; start on a fresh line instead.
        if self._size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                self._f.write(b"\n")
                self._f.flush()
                self._size += 1

    def _rotate(self):
        self._f.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._f = open(self.path, "ab")
        self._size = self._floor = 0
        self.rotations += 1
        first = self.on_rotate() if self.on_rotate else None
        if first is not None:
            data = (json.dumps({"time": now_iso(), **first}, default=_default, separators=(",", ":")) + "\n").encode()
            self._f.write(data)
            self._size = self._floor = len(data)

    def write(self, record: dict) -> None:
        record = {"time": now_iso(), **record} if "time" not in record else record
        data = (json.dumps(record, default=_default, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            if self._f is None:
                raise LogError(f"{self.path}: result log already closed")
            try:
                if self.max_bytes and self._size > self._floor and self._size + len(data) > self.max_bytes:
                    self._rotate()
                self._f.write(data)
                self._f.flush()
                if self.fsync:
                    os.fsync(self._f.fileno())
            except OSError as exc:
                raise LogError(f"{self.path}: cannot write the result log ({exc.strerror or exc}); free disk space") from None
            self._size += len(data)
            self.lines += 1

    def close(self):
        with self._lock:
            if self._f is not None:
                try:
                    self._f.flush()
                    os.fsync(self._f.fileno())
                finally:
                    self._f.close()
                    self._f = None


class NullLog:
    """Used when no --log is given: the service still counts, nothing is written."""

    path = None
    lines = 0
    rotations = 0

    def write(self, record):
        self.lines += 1

    def close(self):
        pass
