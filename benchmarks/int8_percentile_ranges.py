"""Would clipping int8 activation ranges at a percentile make the anomaly extractor's int8 quieter?

    python benchmarks/int8_percentile_ranges.py [--sets casting,screw] [--quantiles 0.99999,0.9999]

The TFLite calibrator sets each activation's int8 range to the min/max it saw on the calibration
images. This converts the default anomaly extractor as ``export`` does (int8 on the set's
train/good images, conv biases corrected), then again with every calibrated range narrowed to the
given quantile of that tensor's values over a third of the calibration images (exact quantiles from
each image's extreme values; a ReLU's zero lower bound kept), and reports what
``benchmarks/int8_noise.py`` reports: int8 error per output as a share of the good spread, the
global Gaussian's image AUROC float / int8, and its verdict agreement at the fit images' 0.99
quantile. Uses TensorFlow's calibrate-only converter path (``_experimental_calibrate_only`` +
``mlir_quantize``), which is private API: an experiment, not an export option. Images are read at run
time; only numbers go to ``benchmarks/results/int8_percentile_ranges.json``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"


def _extremes(tf, calibrated: bytes, images, k=400):
    """{tensor index: (top-k values, bottom-k values, elements per image)} of every ranged activation."""
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    tensors = fbu.convert_bytearray_to_object(calibrated).subgraphs[0].tensors
    ranged = [i for i, t in enumerate(tensors)
              if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1]
    it = tf.lite.Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True, num_threads=2,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    hi, lo, n = {}, {}, {}
    for img in images:
        it.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
        it.invoke()
        for i in ranged:
            v = it.get_tensor(i).ravel()
            if v.dtype.kind != "f":
                continue
            m = min(k, v.size)
            n[i] = v.size
            hi.setdefault(i, []).append(np.partition(v, v.size - m)[v.size - m:])
            lo.setdefault(i, []).append(np.partition(v, m - 1)[:m])
    return {i: (np.sort(np.concatenate(hi[i]))[::-1], np.sort(np.concatenate(lo[i])), n[i]) for i in n}


def _narrowed(tf, calibrated: bytes, extremes, n_images, q):
    """int8 bytes with every range narrowed to quantile ``q``; and the median range kept."""
    from tensorflow.lite.python import convert as tfconvert
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    model = fbu.convert_bytearray_to_object(calibrated)
    tensors, kept = model.subgraphs[0].tensors, []
    for i, (hi, lo, n) in extremes.items():
        qt = tensors[i].quantization
        j = min(int(round((1 - q) * n * n_images)), len(hi) - 1)
        old_min, old_max = float(qt.min[0]), float(qt.max[0])
        new_min = old_min if old_min >= 0 else max(old_min, min(float(lo[j]), 0.0))
        new_max = min(old_max, max(float(hi[j]), 0.0))
        qt.min, qt.max = np.array([new_min], np.float32), np.array([new_max], np.float32)
        kept.append((new_max - new_min) / max(old_max - old_min, 1e-9))
    data = bytes(fbu.convert_object_to_bytearray(model))
    out = tfconvert.mlir_quantize(data, False, fully_quantize=True, input_data_type=tf.uint8,
                                  output_data_type=tf.uint8)
    return bytes(out), float(np.median(kept))


def set_rows(root: Path, quantiles, echo) -> list[dict]:
    from benchmarks.int8_noise import OUTPUTS, _images, _run, extractor_features, noise_over_good_sd
    from export.bias_correct import correct_bias
    from export.convert import convert, convert_keras, converter
    from trainer.anomaly.gaussian import fit_gaussian, mahalanobis
    from trainer.metrics import auroc
    from trainer.tfutil import import_tf

    tf = import_tf()
    x_fit, x_test, y = _images(root, 200)
    named, f_fit, f_test, shapes = extractor_features(x_fit, x_test)
    mu, w = fit_gaussian(f_fit[1], 1)
    d_f = mahalanobis(f_test[1], mu, w)
    thr = float(np.quantile(mahalanobis(f_fit[1], mu, w), 0.99))
    twin = convert(named, "fp32")

    def row(label, data):
        data, _ = correct_bias(data, twin, x_fit)
        q_fit, q_test = _run(data, x_fit, shapes), _run(data, x_test, shapes)
        r = {"set": root.name, "ranges": label}
        for name, ff, qf in zip(OUTPUTS, f_fit, q_fit):
            r[f"{name}_noise"] = round(noise_over_good_sd(ff, qf), 4)
        d_q = mahalanobis(q_test[1], mu, w)
        r["global_auroc_float"], r["global_auroc_int8"] = round(auroc(y, d_f), 4), round(auroc(y, d_q), 4)
        r["global_agreement"] = round(float(np.mean((d_f >= thr) == (d_q >= thr))), 4)
        echo(f"  {root.name} {label}: {r}")
        return r

    rows = [row("min/max (export)", convert_keras(named, "int8", x_fit, bias_correct=False)[0])]
    conv = converter(named, "int8", x_fit)  # export's own int8 settings, stopped after calibration
    conv._experimental_calibrate_only = True
    calibrated = bytes(conv.convert())
    sample = x_fit[::3]
    ext_vals = _extremes(tf, calibrated, sample)
    for q in quantiles:
        data, kept = _narrowed(tf, calibrated, ext_vals, len(sample), q)
        r = row(f"q={q}", data)
        r["median_range_kept"] = round(kept, 3)
        rows.append(r)
    return rows


@click.command()
@click.option("--data", type=click.Path(path_type=Path, file_okay=False), default=SHARED / "realdata", show_default=True)
@click.option("--sets", default="casting,screw", show_default=True)
@click.option("--quantiles", default="0.99999,0.9999", show_default=True)
@click.option("--out", type=click.Path(path_type=Path),
              default=ROOT / "benchmarks" / "results" / "int8_percentile_ranges.json", show_default=True)
def main(data, sets, quantiles, out):
    from edge.atomic import atomic_write_json

    names = [s for s in sets.split(",") if s]
    missing = [n for n in names if not (data / n / "train" / "good").is_dir()]
    if missing:
        raise click.UsageError(f"{', '.join(missing)}: no train/good under {data} (MVTec layout; --data DIR)")
    qs = [float(q) for q in quantiles.split(",") if q]
    rows = [r for n in names for r in set_rows(data / n, qs, click.echo)]
    head = ("set", "ranges", "patch", "global", "probe", "global AUROC f / int8", "global agreement")
    click.echo("| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
    for r in rows:
        click.echo(f"| {r['set']} | {r['ranges']} | {r['patch_noise']:.3f} | {r['global_noise']:.3f} | "
                   f"{r['probe_noise']:.3f} | {r['global_auroc_float']:.4f} / {r['global_auroc_int8']:.4f} | "
                   f"{r['global_agreement']:.3f} |")
    atomic_write_json(out, {"rows": rows})
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
