"""How long `edgeinspect data synth` takes for the default sets (391 + 40 + 17 per defect at 256 px).

    python benchmarks/synth_speed.py [--kind hazelnut] [--workers 1 2] [--repeats 1]

Prints a table and writes benchmarks/results/synth_speed.json. Medians over repeats.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.atomic import atomic_write_json, utc_stamp  # noqa: E402
from trainer.data.synth import DEFECTS, generate  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", nargs="+", default=["hazelnut", "casting"], choices=sorted(DEFECTS))
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "synth_speed.json"))
    args = ap.parse_args(argv)
    rows = []
    for kind in args.kind:
        n = 391 + 40 + 17 * len(DEFECTS[kind])
        for workers in args.workers:
            times = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    generate(Path(tmp) / kind, kind=kind, size=args.size, seed=0, progress=False, workers=workers)
                    times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            rows.append({"kind": kind, "size": args.size, "images": n, "workers": workers, "seconds": round(med, 2),
                         "ms_per_image": round(1000 * med / n, 1), "images_per_s": round(n / med, 1),
                         "repeats": args.repeats})
            print(f"{kind:9s} {n:4d} images @{args.size}px workers={workers}: {med:6.1f} s "
                  f"({1000 * med / n:5.1f} ms/image, {n / med:5.1f} img/s)", flush=True)
    result = {"benchmark": "synth_speed", "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "created": utc_stamp(),
              "rows": rows}
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
