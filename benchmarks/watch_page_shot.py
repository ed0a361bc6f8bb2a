"""A screenshot of ``watch --ui-port``'s live page on synthetic parts (no real image), with headless Chromium.

The real service inspects 16 synthetic discs (every fourth with a bright blob: a reject with a heat map)
with a tiny edgeinspect anomaly model built in a child process (this process never imports TensorFlow),
then Chromium renders the page the operator would see.

    python -m benchmarks.watch_page_shot [--out benchmarks/results/watch_live_page.png]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "watch_live_page.png"


def tiny_anomaly_model(out_dir):
    code = ("import sys; from tests.fixtures.edge import make_tiny_tflite; "
            "print(make_tiny_tflite('anomaly', sys.argv[1], 'int8', name='page_anomaly_int8.tflite'))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    out = subprocess.run([sys.executable, "-c", code, str(out_dir)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"could not build the tiny anomaly model: {out.stderr[-1500:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def synthetic_part(rng, defect, size=128):
    """A grey disc on a dark belt; a defect is a bright blob somewhere on it."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size, 3), 38, np.uint8)
    cx, cy = size / 2 + rng.normal(0, 3), size / 2 + rng.normal(0, 3)
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (size * 0.38) ** 2
    img[disc] = (118 + rng.integers(-6, 7, 3)).astype(np.uint8)
    if defect:
        a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0, size * 0.22)
        bx, by = cx + r * np.cos(a), cy + r * np.sin(a)
        img[(xx - bx) ** 2 + (yy - by) ** 2 < rng.uniform(11, 16) ** 2] = 245
    return img


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--parts", type=int, default=16)
    args = ap.parse_args(argv)

    from PIL import Image

    from benchmarks.render_check import find_chromium
    from edge.watch.service import Service, WatchConfig
    from tests.fixtures.watch import free_port, run_in_thread, wait_until

    exe = find_chromium()
    if exe is None:
        print("watch_page_shot: Chromium not found (apt-get install -y chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="watch_page_") as tmp:
        work = Path(tmp)
        model = tiny_anomaly_model(work)
        cam = work / "cam"
        cam.mkdir()
        svc = Service(WatchConfig(model=str(model), source=str(cam), ui_port=free_port(), poll=0.02, quiet=True))
        t, box = run_in_thread(svc)
        rng = np.random.default_rng(15)
        try:
            for i in range(args.parts):
                Image.fromarray(synthetic_part(rng, i % 4 == 2)).save(cam / f"part_{i:04d}.png")
                wait_until(lambda: svc.counts["ok"] + svc.counts["errors"] == i + 1, what=f"part {i}")
                time.sleep(0.05)
            url = f"http://127.0.0.1:{svc.sinks.get('ui').port}/"
            out = Path(args.out).resolve()
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                   "--disable-background-networking", f"--user-data-dir={work / 'chromium'}",
                   f"--screenshot={out}", "--window-size=1280,1380", url]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0 or not out.is_file():
                print(f"watch_page_shot: Chromium failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 2
        finally:
            svc.request_stop("screenshot taken")
            t.join(15)
    print(f"watch_page_shot: wrote {out} ({svc.counts['failed']} rejects of {svc.counts['ok']} parts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
