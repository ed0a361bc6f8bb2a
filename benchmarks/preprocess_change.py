"""What the issue-18 resize change does to models trained before it, measured on real photographs.

    python benchmarks/preprocess_change.py [RUN_DIR:IMAGE_DIR ...]

Every image under IMAGE_DIR goes through the model in RUN_DIR/export/model_int8.tflite twice: with
the pre-issue-18 preprocessing (Pillow antialiased bilinear, ``reducing_gap=2``) and with
``edge.preprocess.to_model_input`` (box halving + INTER_LINEAR_EXACT bilinear). Prints verdict
agreement and the score difference per model, for the images as saved (all under 2x the input:
byte-identical) and stretched to a 1920x1080 frame (the new path), and writes benchmarks/results/preprocess_change.json
(numbers only: ../shared/realdata may not be copied). Defaults: the realdata runs of
benchmarks/realdata.py under /tmp/rd and the demo's two runs under /tmp/demo, where present.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "realdata"
DEFAULTS = [f"/tmp/rd/runs/{s}_patch_global:{REAL / s / 'test'}" for s in ("casting", "screw", "magnetic_tile")] + [
    f"/tmp/demo/runs/demo/runs/{t}:/tmp/demo/runs/demo/data/hazelnut/test" for t in ("classifier", "anomaly")]


FRAME = (1920, 1080)


def old_pixels(img, size):
    from PIL import Image

    h, w = size
    return np.asarray(img if img.size == (w, h) else img.resize((w, h), Image.BILINEAR, reducing_gap=2.0))


def compare(run, images, frame=False):
    from PIL import Image

    from edge.imageio import is_image_path, open_image
    from edge.preprocess import to_model_input
    from edge.runtime import EdgeModel

    m = EdgeModel(Path(run) / "export" / "model_int8.tflite", threads=1)
    paths = sorted(p for p in Path(images).rglob("*") if is_image_path(p))
    agree, diffs, pix = 0, [], []
    for p in paths:
        img = open_image(p) if frame else open_image(p, m.input_size)
        if frame:  # the same part as a 1080p camera frame (stretched up, bicubic)
            img = img.resize(FRAME, Image.BICUBIC)
        a, b = old_pixels(img, m.input_size), to_model_input(img, m.input_size)
        pa, pb = m.predict_pixels(a), m.predict_pixels(b)
        agree += pa.verdict == pb.verdict
        diffs.append(abs(pa.score - pb.score))
        pix.append(float(np.abs(a.astype(int) - b).mean()))
    return {"run": str(run), "task": m.task, "as_1080p_frame": frame, "images": len(paths), "verdict_agreement": round(agree / len(paths), 4),
            "max_score_diff": round(max(diffs), 5), "median_score_diff": round(float(np.median(diffs)), 5),
            "mean_abs_pixel_diff": round(float(np.mean(pix)), 3)}


def main(argv=None):
    from edge.atomic import atomic_write_json

    pairs = [a.split(":", 1) for a in (argv if argv is not None else sys.argv[1:])] or \
        [d.split(":", 1) for d in DEFAULTS if Path(d.split(":", 1)[0]).is_dir()]
    rows = [compare(r, i, frame) for frame in (False, True) for r, i in pairs]
    print(f"{'run':<48} {'frame':<9} {'task':<10} {'images':>6} {'agree':>6} {'max |ds|':>9} {'med |ds|':>9} {'px diff':>7}")
    for r in rows:
        print(f"{r['run'][-48:]:<48} {'1080p' if r['as_1080p_frame'] else 'as saved':<9} {r['task']:<10} {r['images']:>6} {r['verdict_agreement']:>6.3f} "
              f"{r['max_score_diff']:>9.5f} {r['median_score_diff']:>9.5f} {r['mean_abs_pixel_diff']:>7.3f}")
    out = ROOT / "benchmarks" / "results" / "preprocess_change.json"
    atomic_write_json(out, {"old": "Pillow bilinear, reducing_gap=2", "new": "edge.preprocess.to_model_input",
                            "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
