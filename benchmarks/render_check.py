"""Screenshot a report.html with headless Chromium, to check the page really renders.

    python benchmarks/render_check.py runs/demo/runs/classifier/bench/report.html out.png

Exit 0 with the PNG written; exit 2 with one line when Chromium is missing or fails
(``apt-get install -y chromium``). Networking is switched off, so a page that
needed anything from elsewhere would show it missing in the screenshot.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium():
    for name in CANDIDATES:
        exe = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if exe:
            return exe
    return None


def screenshot(html_path, png_path, width=1280, height=2000, timeout=120) -> Path:
    """Render ``html_path`` to ``png_path``; raises RuntimeError with the reason on failure."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("Chromium not found (install it with: apt-get install -y chromium)")
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise RuntimeError(f"{html_path}: no such report")
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if png_path.exists():
        png_path.unlink()
    with tempfile.TemporaryDirectory(prefix="render_check_") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png_path}",
               f"--window-size={width},{height}", html_path.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Chromium did not finish within {timeout}s") from None
    if not png_path.is_file() or png_path.stat().st_size == 0:
        err = (proc.stderr or "").strip().splitlines()
        raise RuntimeError(f"Chromium wrote no screenshot (exit {proc.returncode}: {err[-1] if err else ''})")
    return png_path


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        print("usage: python benchmarks/render_check.py REPORT.html OUT.png", file=sys.stderr)
        return 2
    try:
        out = screenshot(argv[0], argv[1])
    except RuntimeError as exc:
        print(f"render_check: {exc}", file=sys.stderr)
        return 2
    print(f"render_check: {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
