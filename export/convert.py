"""Turn a run folder into TFLite variants, each tagged with metadata and checked against Keras.

Variants (``RUN/export/model_<variant>.tflite``):

* ``fp32``    - float32, the reference;
* ``fp16``    - float16 weights (half the size, float compute);
* ``dynamic`` - int8 weights, float activations (no calibration needed);
* ``int8``    - full integer, **uint8 raw-pixel input** and uint8 outputs, calibrated on the
  run's training images; the only one the Edge TPU accepts;
* ``edgetpu`` - ``model_int8_edgetpu.tflite``, the int8 file compiled by ``edgetpu_compiler``.

Conversion uses ``TFLiteConverter.from_keras_model`` on a batch-1 rebuild of the
model: a dynamic batch dimension makes the Edge TPU compiler fall back to the CPU,
and ``from_concrete_functions`` on a Keras 3 model silently drops the weights.
Every file is written atomically; a variant that fails parity is kept aside as
``model_<variant>.failed.tflite`` so the deployed file is never replaced by a bad one.
"""
from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path

import numpy as np

from edge import __version__
from edge.atomic import atomic_write_bytes, atomic_write_json
from edge.metadata import with_metadata
from export import calibration
from export import parity
from export.variant_threshold import variant_threshold
from export.errors import CompilerMissing, ExportError
from export.model_meta import build_metadata
from export.quiet import captured_output, tail

VARIANTS = ("fp32", "fp16", "dynamic", "int8")
ALL_VARIANTS = VARIANTS + ("edgetpu",)
FILENAMES = {v: f"model_{v}.tflite" for v in VARIANTS} | {"edgetpu": "model_int8_edgetpu.tflite"}
# A converted file must hold at least this many bytes per Keras parameter (BatchNorm folds away, so < 1x).
MIN_BYTES_PER_PARAM = {"fp32": 2.0, "fp16": 1.0, "dynamic": 0.5, "int8": 0.5}


def _echo(progress):
    if callable(progress):
        return progress
    if progress:
        import click

        return lambda msg: click.echo(msg, err=False)
    return None


def register_custom_layers():
    """Register the trainer's custom Keras layers (classifier and anomaly) before loading a model."""
    try:
        from trainer.layers import register_all
    except ImportError:  # a checkout without the trainer's layers: plain Keras models still load
        register_all = None
    if register_all is not None:
        register_all()
        return
    for name in ("trainer.anomaly",):
        try:
            __import__(name)
        except ImportError:
            pass


def load_run_model(run_dir):
    """The run's Keras model, custom layers registered. Raises a one-line error for a missing/damaged model."""
    from trainer.run_folder import read_run
    from trainer.tfutil import import_keras

    keras = import_keras()
    read_run(run_dir)  # clear errors for a folder without run.json / model.keras
    register_custom_layers()
    path = Path(run_dir) / "model.keras"
    try:
        with captured_output():
            return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: cannot load the Keras model ({text[:300]}); re-run training or check that "
                          "the trainer's custom layers (trainer.layers / trainer.anomaly) are installed") from None


def batch1_model(model, info):
    """The same graph and weights with a fixed (1, H, W, 3) input."""
    from trainer.tfutil import import_keras

    keras = import_keras()
    if len(model.inputs) != 1:
        raise ExportError(f"model has {len(model.inputs)} inputs; the run-folder contract is one (None, H, W, 3) image")
    shape = tuple(model.inputs[0].shape)
    h, w = (int(v) for v in info["input_size"])
    if len(shape) != 4 or shape[3] != 3 or any(s not in (None, t) for s, t in zip(shape[1:3], (h, w))):
        raise ExportError(f"model input {shape} does not match run.json input_size {[h, w]} (expected (None, {h}, {w}, 3))")
    inp = keras.Input((h, w, 3), batch_size=1, name="image", dtype="float32")
    out = model(inp)
    if not isinstance(out, dict):
        raise ExportError("model outputs are not named; expected {'defect', 'type'} (classifier) or {'score', 'map'} (anomaly)")
    want = {"classifier": {"defect", "type"}, "anomaly": {"score", "map"}}[info["task"]]
    if set(out) != want:
        raise ExportError(f"model outputs {sorted(out)} do not match task {info['task']!r}: expected {sorted(want)}")
    return keras.Model(inp, out, name=f"{model.name}_batch1")


def convert(model1, variant, rep_images=None):
    """TFLite bytes of ``variant`` for a batch-1 Keras model."""
    from trainer.tfutil import import_tf

    tf = import_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model1)
    if variant == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if rep_images is None or len(rep_images) == 0:
            raise ExportError("int8 needs calibration images")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = calibration.representative_dataset(rep_images)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
    elif variant != "fp32":
        raise ExportError(f"unknown variant {variant!r}; choose from {', '.join(ALL_VARIANTS)}")
    try:
        with captured_output() as log:
            data = conv.convert()
    except Exception as exc:  # noqa: BLE001 - converter errors are many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{variant} conversion failed: {first[:300]} {tail(log())[:300]}".strip()) from None
    return bytes(data)


def check_weights(data: bytes, n_params: int, variant: str):
    """Refuse a file too small to hold the model's weights (the silent empty-model failure)."""
    need = int(MIN_BYTES_PER_PARAM[variant] * n_params)
    if len(data) < need:
        raise ExportError(f"{variant} model is {len(data)} bytes but the Keras model has {n_params} parameters "
                          f"(expected >= {need} bytes): the weights were not exported")


def parse_variants(variants=None, all_=False):
    """Normalise a variant selection; unknown names are errors."""
    chosen = list(ALL_VARIANTS if all_ else (variants or ()))
    unknown = [v for v in chosen if v not in ALL_VARIANTS]
    if unknown:
        raise ExportError(f"unknown variant(s) {', '.join(map(repr, unknown))}; choose from {', '.join(ALL_VARIANTS)}")
    if not chosen:
        chosen = list(VARIANTS)
    if "edgetpu" in chosen and "int8" not in chosen:
        chosen.append("int8")  # the compiler's input
    return [v for v in ALL_VARIANTS if v in chosen]


def _parity_split(manifest, run_dir):
    for split in ("test", "val"):
        files = calibration.split_files(manifest, run_dir, split)
        if files:
            return split, files
    return "train", calibration.split_files(manifest, run_dir, "train")


def export_run(run_dir, variants=VARIANTS, calib_size=calibration.DEFAULT_CALIB_SIZE, seed=0, edgetpu=False,
               allow_cpu_ops=False, min_agreement=parity.MIN_AGREEMENT, max_auroc_drop=parity.MAX_AUROC_DROP,
               progress=True, no_fail=False, skip_bad=False,
               min_type_agreement=parity.MIN_TYPE_AGREEMENT) -> dict:
    """Export ``run_dir`` and return the report (also written to RUN/export/export_report.json).

    ``edgetpu``: True compiles for the Edge TPU (error if the compiler is missing),
    "auto" compiles when the compiler is on PATH and notes the skip otherwise.
    ``report["status"]`` is "FAILED" when any variant failed parity or compilation.
    """
    from trainer.run_folder import read_run

    say = _echo(progress)
    t0 = time.time()
    run_dir = Path(run_dir)
    info = read_run(run_dir)
    for key in ("task", "labels", "input_size", "threshold"):
        if key not in info:
            raise ExportError(f"{run_dir}/run.json lacks {key!r}; re-run training")
    if info["task"] not in ("classifier", "anomaly"):
        raise ExportError(f"{run_dir}/run.json: unknown task {info['task']!r}")
    chosen = parse_variants(list(variants) + (["edgetpu"] if edgetpu else []))
    want_tpu = "edgetpu" in chosen
    tpu_skip = None
    if want_tpu:
        from export import edgetpu as tpu

        if tpu.find_compiler() is None:
            if edgetpu == "auto":
                chosen.remove("edgetpu")
                want_tpu = False
                tpu_skip = tpu.missing_message()
            else:
                raise CompilerMissing(tpu.missing_message())
    h, w = (int(v) for v in info["input_size"])
    threshold = float(info["threshold"])
    out_dir = run_dir / "export"
    manifest = calibration.read_manifest(run_dir)

    if say:
        say(f"export {run_dir} ({info['task']}, {h}x{w}, threshold {threshold:.4g}): {', '.join(chosen)}")
    model = load_run_model(run_dir)
    n_params = int(model.count_params())
    model1 = batch1_model(model, info)

    split, pfiles = _parity_split(manifest, run_dir)
    images, kept, skipped = calibration.load_images([f["abspath"] for f in pfiles], (h, w), skip_bad=skip_bad,
                                                    progress=say, what=f"parity images ({split} split)")
    by_path = {f["abspath"]: f for f in pfiles}
    labels = np.array([int(by_path[p]["label"]) for p in kept], int)
    ref = parity.run_keras(model, images, info["task"])
    ref_rep = binary_report(labels, ref["score"], threshold)

    report = {
        "run": str(run_dir), "name": info.get("name"), "task": info["task"], "labels": info["labels"],
        "input_size": [h, w], "threshold": threshold, "threshold_policy": info.get("threshold_policy"),
        "manifest_sha256": info.get("manifest_sha256"), "keras_params": n_params,
        "parity_split": split, "parity_images": int(len(images)), "parity_skipped": skipped,
        "criteria": {"min_agreement": min_agreement, "min_type_agreement": min_type_agreement,
                     "max_auroc_drop": max_auroc_drop, "no_fail": bool(no_fail)},
        "float_reference": {k: ref_rep[k] for k in ("n", "n_defective", "n_good", "auroc", "balanced_accuracy",
                                                     "accuracy", "majority_baseline", "majority_class", "warnings")},
        "variants": {}, "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "edgeinspect_version": __version__,
    }
    if split != "test":
        report.setdefault("notes", []).append(f"no 'test' split in the manifest; parity measured on '{split}'")
    if tpu_skip:
        report.setdefault("notes", []).append(f"edgetpu skipped: {tpu_skip}")
        if say:
            say(f"  note: edgetpu skipped: {tpu_skip}")

    rep_images = None
    if "int8" in chosen:
        if say:
            say(f"calibration set: up to {calib_size} training images, stratified by type, seed {seed}")
        rep_images, cinfo = calibration.calibration_set(run_dir, manifest, (h, w), calib_size=calib_size, seed=seed,
                                                        skip_bad=skip_bad, progress=say)
        report["calibration"] = cinfo

    report_path = out_dir / "export_report.json"
    cal_images = cal_ref = None
    for variant in [v for v in chosen if v != "edgetpu"]:
        t = time.time()
        if say:
            say(f"[{variant}] converting...")
        data = convert(model1, variant, rep_images)
        if variant == "int8":
            # int8 MobileNetV2 drifts by a per-channel mean error that accumulates layer by layer;
            # removing it against the float32 twin measured anomaly Spearman 0.986 -> 0.996 and
            # classifier verdict agreement 0.959 -> 0.980 on the demo runs (export/bias_correct.py).
            from export.bias_correct import correct_bias

            data, report["bias_correction"] = correct_bias(data, convert(model1, "fp32"), rep_images, progress=say)
        check_weights(data, n_params, variant)
        it = parity.open_interpreter(data)
        it.allocate_tensors()
        meta = build_metadata(info, it, variant)
        if cal_images is None:
            cal_images = _threshold_images(manifest, run_dir, (h, w), rep_images, skip_bad, say)
            cal_ref = parity.run_keras(model, cal_images, info["task"])["score"]
        meta["threshold"], meta["threshold_calibration"] = variant_threshold(
            cal_ref, parity.run_tflite(data, cal_images, meta)["score"], threshold)
        data = with_metadata(data, meta)
        got = parity.run_tflite(data, images, meta)
        res = parity.judge(parity.compare(ref, got, labels, threshold, info["task"], got_threshold=meta["threshold"]),
                           min_agreement, max_auroc_drop, min_type_agreement)
        entry = _entry(variant, data, meta, res, no_fail)
        if variant == "int8":
            from edge.edgetpu_preflight import preflight

            # Prediction from Coral's op table, so users without edgetpu_compiler see what would map.
            entry["edgetpu_preflight"] = preflight(data)
            if say:
                say(f"[int8] {entry['edgetpu_preflight']['summary']} (prediction, not a compile)")
        path = out_dir / entry["file"]
        atomic_write_bytes(path, data)
        stale = out_dir / f"model_{variant}.failed.tflite"
        if path != stale and stale.exists():
            stale.unlink()  # an earlier failed attempt must not linger beside the good file
        entry["seconds"] = round(time.time() - t, 2)
        report["variants"][variant] = entry
        if say:
            say(f"[{variant}] {entry['file']}: {entry['size_mb']:.2f} MB, agreement {res['agreement']:.4f}, "
                f"{entry['status']}" + (f" ({'; '.join(res['reasons'])})" if res["reasons"] else ""))

    if want_tpu:
        _edgetpu(report, info, out_dir, allow_cpu_ops, no_fail, say)

    report["status"] = "FAILED" if any(v["status"] == "FAILED" for v in report["variants"].values()) else "OK"
    report["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(report_path, report)
    if say:
        say(parity.format_table(report))
        say(f"report: {report_path}")
    return report


def _threshold_images(manifest, run_dir, size, rep_images, skip_bad, say):
    """Images each variant's threshold is measured on: the val split (out-of-sample, like the line's
    parts) plus the int8 calibration images; never the test split, which judges parity."""
    files = calibration.split_files(manifest, run_dir, "val")
    val, _, _ = calibration.load_images([f["abspath"] for f in files], size, skip_bad=skip_bad, progress=say,
                                        what="threshold images (val split)") if files else (None, [], 0)
    parts = [x for x in (val, rep_images) if x is not None and len(x)]
    if not parts:
        parts = [calibration.load_images([f["abspath"] for f in calibration.split_files(manifest, run_dir, "train")][:64],
                                         size, skip_bad=skip_bad, progress=say, what="threshold images (train)")[0]]
    return np.concatenate(parts, axis=0)


def binary_report(*a, **k):
    from trainer.metrics import binary_report as br

    return br(*a, **k)


def _entry(variant, data, meta, res, no_fail):
    failed = res["status"] == "FAILED"
    # Keep a failed variant out of the deployed file name unless told otherwise.
    name = FILENAMES[variant] if (not failed or no_fail) else f"model_{variant}.failed.tflite"
    return {
        "file": name, "size_bytes": len(data), "size_mb": len(data) / 1e6, "status": res["status"],
        "input": meta["input"], "outputs": meta["outputs"], "output_quantization": meta["output_quantization"],
        "model_version": meta["model_version"], "parity": parity.jsonable(res),
    }


def _edgetpu(report, info, out_dir, allow_cpu_ops, no_fail, say):
    from edge.metadata import read_metadata
    from export import edgetpu as tpu

    int8 = report["variants"].get("int8")
    if int8 is None or (int8["status"] == "FAILED" and not no_fail):
        report["variants"]["edgetpu"] = {"file": None, "status": "FAILED",
                                         "error": "int8 variant failed parity; not compiled"}
        return
    src = out_dir / int8["file"]
    if say:
        say("[edgetpu] compiling the int8 model...")
    entry = {"file": FILENAMES["edgetpu"]}
    try:
        data, parsed = tpu.compile_model(src, out_dir / FILENAMES["edgetpu"], allow_cpu_ops=allow_cpu_ops, progress=say)
    except tpu.EdgeTPUFallback as exc:
        entry.update(status="FAILED", error=str(exc))
        report["variants"]["edgetpu"] = entry
        report["status"] = "FAILED"
        atomic_write_json(out_dir / "export_report.json", report)
        raise
    meta = dict(read_metadata(src))
    meta.update(variant="edgetpu", model_version=meta["model_version"].rsplit("-", 1)[0] + "-edgetpu")
    data = with_metadata(data, meta)
    atomic_write_bytes(out_dir / FILENAMES["edgetpu"], data)
    entry.update(size_bytes=len(data), size_mb=len(data) / 1e6, status="OK", model_version=meta["model_version"],
                 ops_on_edgetpu=parsed["ops_on_edgetpu"], ops_on_cpu=parsed["ops_on_cpu"],
                 total_ops=parsed["total_ops"], cpu_ops=parsed["cpu_ops"], compiler_version=parsed["compiler_version"],
                 edgetpu_subgraphs=parsed["edgetpu_subgraphs"], command=parsed["command"],
                 preflight_predicted_mapped=int8.get("edgetpu_preflight", {}).get("ops_mapped"),
                 parity={**int8["parity"], "note": "Edge TPU ops need a TPU to run; the compiler keeps int8 arithmetic, "
                                                   "so these are the int8 variant's numbers"})
    report["variants"]["edgetpu"] = entry
    if say:
        say(f"[edgetpu] {entry['file']}: {parsed['ops_on_edgetpu']} ops on the Edge TPU, {parsed['ops_on_cpu']} on the CPU"
            + (f" ({tpu.cpu_ops_text(parsed)})" if parsed["ops_on_cpu"] else ""))
