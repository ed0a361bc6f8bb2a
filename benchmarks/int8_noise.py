"""Where int8 moves the anomaly scorer's features, per real set: the diagnosis behind its parity failures.

    python benchmarks/int8_noise.py [--data ../shared/realdata] [--sets casting,screw] [--images 200]

For each set the default anomaly extractor (the scorer's patch features, the pooled ``global_tap``
and the combined mode's pooled ``probe_tap``) is converted as ``export`` converts it — int8 calibrated
on the set's train/good images, conv biases corrected against float32 — and, for comparison,
to the dynamic-range variant (int8 weights, float activations). Both run on train/good and on the test
images. Per output it reports the int8 error of each channel as a share of the good images' spread
in that channel (median over channels), and for the global Gaussian the error in whitened units
(1 = the good images' spread in every direction) and the image AUROC float vs int8. The images
are read at run time and only numbers are written (``benchmarks/results/int8_noise.json``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"
OUTPUTS = ("patch", "global", "probe")


def _images(root: Path, limit: int):
    from trainer.data.dataset import load_batch

    train = sorted(p for p in (root / "train" / "good").iterdir() if p.is_file())[:limit]
    test = sorted(p for p in (root / "test").glob("*/*") if p.is_file())
    y = np.array([0 if p.parent.name == "good" else 1 for p in test])
    return load_batch(train, 224), load_batch(test, 224), y


def _run(data: bytes, images, shapes):
    """Dequantised outputs of a .tflite of the extractor, matched to the float outputs by width."""
    from edge.preprocess import quantize_pixels
    from export.parity import _dequantize, open_interpreter

    it = open_interpreter(data, 2)
    it.allocate_tensors()
    inp, outs = it.get_input_details()[0], it.get_output_details()
    res = [[] for _ in outs]
    for img in images:
        it.set_tensor(inp["index"], quantize_pixels(img[None], inp["dtype"], inp["quantization"]))
        it.invoke()
        for j, o in enumerate(outs):
            res[j].append(_dequantize(it.get_tensor(o["index"]), o))
    res = [np.stack(r).reshape(len(images), -1) for r in res]
    return [next(r for r in res if r.shape[1] == int(np.prod(s))) for s in shapes]


def noise_over_good_sd(f_float, f_variant) -> float:
    """Median over live channels of the variant's error sd as a share of the good images' sd."""
    sd = f_float.std(0)
    live = sd > 1e-6 * max(float(sd.max()), 1e-12)
    return float(np.median((f_variant - f_float).std(0)[live] / sd[live]))


def extractor_features(x_fit, x_test):
    """(batch-1 Keras extractor with named outputs, float features of x_fit, of x_test, output shapes)."""
    from trainer.anomaly.model import build_feature_extractor, extract_features
    from trainer.anomaly.settings import DEFAULTS as S
    from trainer.tfutil import import_keras

    keras = import_keras()
    ext = build_feature_extractor(1.0, 224, str(WEIGHTS), S["taps"], S["pool"], S["tap_norm"],
                                  global_tap=S["global_tap"], probe_tap=S["probe_tap"])
    inp = keras.Input((224, 224, 3), batch_size=1, dtype="float32", name="image")
    named = keras.Model(inp, dict(zip(OUTPUTS, ext(inp))))  # the converter wants named outputs
    f_fit = [a.reshape(len(x_fit), -1) for a in extract_features(ext, x_fit)]
    f_test = [a.reshape(len(x_test), -1) for a in extract_features(ext, x_test)]
    return named, f_fit, f_test, [tuple(o.shape[1:]) for o in ext.outputs]


def set_report(root: Path, limit: int, echo) -> dict:
    from export.convert import convert, convert_keras
    from trainer.anomaly.gaussian import fit_gaussian, mahalanobis
    from trainer.metrics import auroc

    t0 = time.time()
    x_fit, x_test, y = _images(root, limit)
    named, f_fit, f_test, shapes = extractor_features(x_fit, x_test)
    echo(f"  {root.name}: float features of {len(x_fit)} + {len(x_test)} images ({time.time() - t0:.0f}s); converting")
    int8, _ = convert_keras(named, "int8", x_fit)
    dynamic = convert(named, "dynamic")
    out = {"set": root.name, "fit_images": len(x_fit), "test_images": int(len(y)), "test_defective": int(y.sum())}
    for variant, data in (("int8", int8), ("dynamic", dynamic)):
        q_fit, q_test = _run(data, x_fit, shapes), _run(data, x_test, shapes)
        row = {}
        for name, ff, qf in zip(OUTPUTS, f_fit, q_fit):
            row[f"{name}_noise_over_good_sd"] = noise_over_good_sd(ff, qf)
        mu, w = fit_gaussian(f_fit[1], 1)
        z_noise = (q_fit[1] - f_fit[1]) @ w.T.astype(np.float64)
        row["global_whitened_noise_var"] = float(z_noise.var(0).mean())
        row["global_whitened_noise_var_max"] = float(z_noise.var(0).max())
        d_f, d_q = mahalanobis(f_test[1], mu, w), mahalanobis(q_test[1], mu, w)
        row["global_auroc_float"], row["global_auroc_variant"] = auroc(y, d_f), auroc(y, d_q)
        good = y == 0
        row["global_distance_rel_error_good"] = float(np.median(np.abs(d_q - d_f)[good] / d_f[good]))
        out[variant] = row
    out["seconds"] = round(time.time() - t0, 1)
    return out


def format_rows(rows) -> str:
    head = ("set", "variant", "patch", "global", "probe", "whitened var", "d rel. err", "AUROC f", "AUROC q")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        for v in ("int8", "dynamic"):
            x = r[v]
            lines.append(" | ".join([r["set"], v] + [f"{x[f'{n}_noise_over_good_sd']:.3f}" for n in OUTPUTS] + [
                f"{x['global_whitened_noise_var']:.3f}", f"{x['global_distance_rel_error_good']:.3f}",
                f"{x['global_auroc_float']:.4f}", f"{x['global_auroc_variant']:.4f}"]))
    return "\n".join("| " + line + " |" for line in lines)


@click.command()
@click.option("--data", type=click.Path(path_type=Path, file_okay=False), default=SHARED / "realdata", show_default=True)
@click.option("--sets", default="", help="Comma-separated set names (default: every set in DATA).")
@click.option("--images", default=200, show_default=True, help="train/good images per set (calibration and fit).")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks" / "results" / "int8_noise.json",
              show_default=True)
def main(data, sets, images, out):
    from edge.atomic import atomic_write_json

    names = [s for s in sets.split(",") if s] or sorted(p.name for p in data.iterdir() if (p / "train").is_dir())
    missing = [n for n in names if not (data / n / "train" / "good").is_dir()]
    if missing:
        raise click.UsageError(f"{', '.join(missing)}: no train/good under {data} (MVTec layout; --data DIR)")
    rows = []
    for n in names:
        rows.append(set_report(data / n, images, click.echo))
    click.echo("\nint8 error of the anomaly extractor's outputs, per channel, as a share of the good spread (median)")
    click.echo(format_rows(rows))
    atomic_write_json(out, {"rows": rows, "weights": WEIGHTS.name, "input_size": 224})
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
