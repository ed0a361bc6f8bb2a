"""Command-line image arguments -> an ordered list of image files.

Files are taken as given (a mislabelled extension still gets a clear decode
error rather than a silent skip); folders are searched recursively for image
extensions; globs are expanded (``**`` included); ``-`` reads one path per
line from stdin, so ``find ... | edgeinspect predict model.tflite -`` works.
Arguments that match nothing are reported, never dropped silently.
"""
from __future__ import annotations

import glob
import os
import sys

from edge.imageio import is_image_path

_GLOB_CHARS = set("*?[")


def _why(exc):
    if isinstance(exc, PermissionError):
        return "cannot read folder: Permission denied; check its permissions"
    return f"cannot read folder: {exc.strerror or exc}"


def _walk(folder, problems=None):
    """Image files under ``folder``; a subfolder that cannot be read is a problem, never a silent skip."""
    out = []

    def onerror(exc):
        if problems is not None:
            problems.append((exc.filename or folder, _why(exc)))

    for root, dirs, files in os.walk(folder, onerror=onerror):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith(".") and is_image_path(f))
    return out


def expand_inputs(args, stdin=None):
    """Return ``(paths, problems)``: image paths in argument order (deduplicated) and
    ``(argument, reason)`` for arguments that yielded no file."""
    paths, problems, seen = [], [], set()

    def add(p):
        key = os.path.normpath(p)
        if key not in seen:
            seen.add(key)
            paths.append(p)

    queue = []
    for a in args:
        if a == "-":
            stream = stdin if stdin is not None else sys.stdin
            queue.extend(line.strip() for line in stream if line.strip())
        else:
            queue.append(a)
    for a in queue:
        if os.path.isdir(a):
            before = len(problems)
            found = _walk(a, problems)
            if not found and len(problems) == before:
                problems.append((a, "folder contains no images (png, jpg, bmp, tif, webp, pgm, ppm)"))
            for p in found:
                add(p)
        elif os.path.exists(a):
            add(a)
        elif _GLOB_CHARS & set(a):
            found = sorted(glob.glob(a, recursive=True))
            files = [p for p in found if os.path.isfile(p) and is_image_path(p)]
            for d in (p for p in found if os.path.isdir(p)):
                files.extend(_walk(d, problems))
            if not files:
                problems.append((a, "pattern matches no image files"))
            for p in files:
                add(p)
        else:
            problems.append((a, "no such file or folder"))
    return paths, problems
