"""Cold start of ``edgeinspect predict MODEL img.png`` on one 1024x1024 PNG.

    python benchmarks/predict_cold.py [--model M.tflite] [--labels L] [--repeats 5]

Each repeat is a fresh ``python -m edge.cli predict`` process (interpreter start,
imports, model load, decode, inference, exit). Reports the median wall time and
the peak RSS of the children (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``,
the largest child seen). Writes ``benchmarks/results/predict_cold.json``.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORAL = ROOT.parent / "shared" / "coral_test_data"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(CORAL / "mobilenet_v2_1.0_224_quant.tflite"))
    ap.add_argument("--labels", default=None, help="for plain classifiers (default: Coral ImageNet labels)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_cold.json"))
    a = ap.parse_args(argv)

    import numpy as np
    from PIL import Image

    from edge.atomic import atomic_write_json
    from edge.metadata import read_metadata

    labels = a.labels
    if labels is None and read_metadata(a.model) is None:
        labels = str(CORAL / "imagenet_labels.txt")
    with tempfile.TemporaryDirectory() as d:
        img = Path(d) / "part_1024.png"
        # A photo-like image (not a flat colour) so PNG decoding does real work.
        src = Image.open(CORAL / "grace_hopper.bmp").convert("RGB").resize((1024, 1024), Image.BILINEAR)
        noise = np.random.default_rng(0).integers(0, 8, (1024, 1024, 3), dtype=np.uint8)
        Image.fromarray(np.asarray(src) + noise).save(img)
        cmd = [sys.executable, "-m", "edge.cli", "predict", a.model, str(img), "--quiet"]
        if labels:
            cmd += ["--labels", labels]
        walls, codes = [], []
        for i in range(a.repeats):
            t = time.perf_counter()
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            walls.append(time.perf_counter() - t)
            codes.append(p.returncode)
            if p.returncode not in (0, 1):
                sys.exit(f"predict failed (exit {p.returncode}): {p.stderr.strip()}")
            print(f"run {i + 1}: {walls[-1]:.3f} s (exit {p.returncode})")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # Linux: KiB
        res = {"model": a.model, "image": "1024x1024 PNG", "png_bytes": img.stat().st_size,
               "command": " ".join(["edgeinspect"] + cmd[3:]), "repeats": a.repeats,
               "wall_s": [round(w, 4) for w in walls], "median_wall_s": round(statistics.median(walls), 4),
               "peak_rss_mb": round(rss_mb, 1), "cpu_count": os.cpu_count(), "exit_codes": codes}
    print(f"median wall {res['median_wall_s']:.3f} s over {a.repeats} cold runs; peak RSS {res['peak_rss_mb']:.1f} MB")
    atomic_write_json(a.out, res)
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
