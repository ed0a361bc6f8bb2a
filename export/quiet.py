"""Silence the TFLite converter's C++ and Python chatter (hundreds of lines per export).

Output goes to a temp file; when conversion fails, its tail becomes part of the error.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile


@contextlib.contextmanager
def captured_output():
    """Redirect fd 1/2 (C++ logs) and sys.stdout/stderr (Python prints); yields a callable -> text."""
    holder = {"text": ""}
    sys.stdout.flush()
    sys.stderr.flush()
    saved = []
    tmp = tempfile.TemporaryFile(mode="w+b")
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(tmp.fileno(), fd)
            except OSError:  # no real fd (embedded interpreters): Python-level capture still works
                pass
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                yield lambda: holder["text"]
            finally:
                holder["text"] = buf.getvalue()
    finally:
        for fd, dup in saved:
            os.dup2(dup, fd)
            os.close(dup)
        tmp.seek(0)
        holder["text"] = tmp.read().decode("utf-8", "replace") + holder["text"]
        tmp.close()


def tail(text: str, n: int = 1) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("W0000", "I0000"))]
    return " | ".join(lines[-n:]) if lines else ""
