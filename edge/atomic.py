"""Atomic writes (models, reports, logs are consumed by others), numbered run folders, UTC stamps."""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def utc_stamp(ms=False) -> str:
    """Now in UTC as ISO 8601 with a Z (``2026-01-01T00:00:00Z``; ``ms``: with milliseconds), for every file."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")


def atomic_write_bytes(path, data: bytes):
    """Write via a temp file in the same folder + fsync + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


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
