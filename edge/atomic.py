"""Atomic writes (models, reports, logs are consumed by others), numbered run folders, UTC stamps."""
from __future__ import annotations

import errno
import json
import os
import re
import stat
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def _umask():
    try:
        with open("/proc/self/status") as f:  # read without changing it (os.umask would, process-wide)
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _resolve_target(path):
    """Where the bytes go: '-' is stdout; a symlink is followed (the link stays a link)."""
    if str(path) == "-":
        return None
    return Path(os.path.realpath(path))


def utc_stamp(ms=False) -> str:
    """Now in UTC as ISO 8601 with a Z (``2026-01-01T00:00:00Z``; ``ms``: with milliseconds), for every file."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")


def atomic_write_bytes(path, data: bytes):
    """Write via a temp file in the same folder + fsync + rename + fsync of the folder: readers never
    see half a file, and the rename survives a power cut.

    The new file gets the replaced file's mode, or the umask's (0644 under the usual 022), never
    mkstemp's 0600, so a service account can read an exported model. ``-`` writes to stdout; a
    symlink is followed; a FIFO, a device or another non-regular file is written directly (renaming
    over ``/dev/stdout`` would replace the device with a regular file).
    """
    target = _resolve_target(path)
    if target is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return Path("-")
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        with open(target, "wb") as f:
            f.write(data)
        return Path(path)
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(target.parent)
    return Path(path)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows: folders cannot be opened; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path, what="output"):
    """Raise OSError now, before any work, when ``path`` could not be written later."""
    target = _resolve_target(path)
    if target is None:
        return
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{what} is a folder", str(path))
    if target.exists() and not target.is_file():
        if not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a folder", str(path))
    if not target.parent.exists():
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(parent))
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".check", dir=target.parent)  # the real test
    os.close(fd)
    os.unlink(tmp)


def atomic_write_text(path, text: str):
    return atomic_write_bytes(path, text.encode("utf-8"))


def _default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def atomic_write_json(path, obj):
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_default) + "\n")


def new_run_dir(project="runs/train", name="exp") -> Path:
    """Next free numbered folder: exp, exp2, exp3... (created, never reused)."""
    root = Path(project)
    root.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(name)}(\d*)$")
    used = [int(m.group(1) or 1) for p in root.iterdir() if (m := pattern.match(p.name))]
    n = max(used, default=0) + 1
    while True:
        candidate = root / (name if n == 1 else f"{name}{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1


def read_json(path, error=None, missing=None, fix=None):
    """Read a JSON file that another stage wrote, with one-line errors naming the file.

    ``error`` is the EdgeInspectError subclass to raise, ``missing`` replaces the
    "file not found" text, ``fix`` is appended to the damaged-file message.
    """
    from edge.errors import EdgeInspectError

    error = error or EdgeInspectError
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {missing or 'file not found'}")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{p}: not valid JSON ({exc})" + (f"; {fix}" if fix else "")) from None
    except OSError as exc:
        raise error(f"{p}: cannot read ({exc.strerror or exc})") from None
