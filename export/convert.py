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

import contextlib
import functools
import tempfile
import time
from pathlib import Path

import numpy as np

from edge import __version__
from edge.atomic import atomic_write_bytes, atomic_write_json, utc_stamp
from edge.progress import as_progress
from edge.metadata import with_metadata
from export import calibration, parity
from export import variants as V
from export.variant_threshold import nearest_indices, variant_threshold
from export.errors import CompilerMissing, ExportError
from export.model_meta import build_metadata
from export.quiet import captured_output, tail
from trainer.data.run_contract import read_run, resolve_root, run_manifest, split_items
from trainer.layers import load_model
from trainer.metrics import binary_report


def batch1_model(model, info=None):
    """The same graph and weights with a fixed (1, H, W, 3) input (the only batch-1 rebuild).

    A dynamic batch dimension makes the Edge TPU compiler fall back to the CPU. ``info``
    (run.json) additionally checks the input size and the task's output names.
    """
    from trainer.tfutil import import_keras

    keras = import_keras()
    if len(model.inputs) != 1:
        raise ExportError(f"model has {len(model.inputs)} inputs; the run-folder contract is one (None, H, W, 3) image")
    shape = tuple(model.inputs[0].shape)
    if info is not None:
        h, w = (int(v) for v in info["input_size"])
        if len(shape) != 4 or shape[3] != 3 or any(s not in (None, t) for s, t in zip(shape[1:3], (h, w))):
            raise ExportError(f"model input {shape} does not match run.json input_size {[h, w]} "
                              f"(expected (None, {h}, {w}, 3))")
    elif len(shape) != 4 or shape[3] != 3 or None in shape[1:3]:
        raise ExportError(f"model input {shape} is not one (None, H, W, 3) image")
    else:
        h, w = int(shape[1]), int(shape[2])
    inp = keras.Input((h, w, 3), batch_size=1, name="image", dtype="float32")
    out = model(inp)
    if not isinstance(out, dict):
        raise ExportError("model outputs are not named; expected {'defect', 'type'} (classifier) or "
                          "{'score', 'map'} (anomaly, optionally with 'type')")
    if info is not None:
        task = info["task"]
        want = {"classifier": {"defect", "type"}, "anomaly": {"score", "map"}}[task]
        allowed = [want] + ([want | {"type"}] if task == "anomaly" else [])  # anomaly + defect-type head
        if set(out) not in allowed:
            raise ExportError(f"model outputs {sorted(out)} do not match task {task!r}: expected "
                              + " or ".join(str(sorted(a)) for a in allowed))
    return keras.Model(inp, out, name=f"{model.name}_batch1")


def _is_batch1(model) -> bool:
    return len(model.inputs) == 1 and model.inputs[0].shape[0] == 1


def convert_keras(model, variant, rep_images=None, *, bias_correct=True, fp32=None, progress=None, saved_model=None):
    """(TFLite bytes, bias-correction summary or None) of ``variant``: the one way a model is converted.

    ``model`` is any edgeinspect Keras model (rebuilt at batch 1 here unless it already is).
    ``rep_images``: uint8 (N, H, W, 3) training images, int8 only. ``bias_correct`` (int8):
    remove each conv's mean error against the float32 twin (export/bias_correct.py); pass
    that twin as ``fp32`` when it was already converted, so it is not converted twice.
    ``saved_model``: the folder :func:`saved_model_of` wrote for this model, so that several
    variants share one Keras -> SavedModel step.
    """
    model1 = model if _is_batch1(model) else batch1_model(model)
    source = saved_model if saved_model is not None else model1
    data = convert(source, variant, rep_images)
    if variant != "int8" or not bias_correct:
        return data, None
    # int8 MobileNetV2 drifts by a per-channel mean error that accumulates layer by layer;
    # removing it against the float32 twin measured anomaly Spearman 0.986 -> 0.996 and
    # classifier verdict agreement 0.959 -> 0.980 on the demo runs (export/bias_correct.py).
    from export.bias_correct import correct_bias

    twin = fp32 if fp32 is not None else convert(source, "fp32")
    return correct_bias(data, twin, np.asarray(rep_images), progress=progress)


@contextlib.contextmanager
def saved_model_of(model1):
    """Yields a temporary SavedModel folder of the batch-1 Keras model (None where Keras is not 3.x).

    ``TFLiteConverter.from_keras_model`` writes this SavedModel afresh for every variant (about
    half of each conversion's time at 224 px); written once here the same way (an inference-only
    ``serve`` endpoint), every variant converts from it to the same graph.
    """
    from trainer.tfutil import import_keras, import_tf

    keras, tf = import_keras(), import_tf()
    if not keras.__version__.startswith("3"):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="edgeinspect_savedmodel_") as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model1)
        spec = [tf.TensorSpec(x.shape, dtype=x.dtype, name=x.name) for x in model1.inputs]
        # Keras 3 exports __call__ with training=True by default; the converter's own path pins False too.
        archive.add_endpoint("serve", functools.partial(model1.__call__, training=False), spec)
        with captured_output():
            archive.write_out(tmp, verbose=False)
        yield tmp


def convert(model1, variant, rep_images=None):
    """TFLite bytes of ``variant`` for a batch-1 Keras model or its :func:`saved_model_of` folder."""
    conv = converter(model1, variant, rep_images)
    try:
        with captured_output() as log:
            data = conv.convert()
    except Exception as exc:  # noqa: BLE001 - converter errors are many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{variant} conversion failed: {first[:300]} {tail(log())[:300]}".strip()) from None
    return bytes(data)


def converter(model1, variant, rep_images=None):
    """The ``tf.lite.TFLiteConverter`` set up for ``variant`` from the variant table (not yet run)."""
    from trainer.tfutil import import_tf

    row = V.get(variant)
    if row.source != "convert":
        raise ExportError(f"{variant} is not made by the TFLite converter; choose from {', '.join(V.CONVERTED)}")
    tf = import_tf()
    if isinstance(model1, (str, Path)):
        conv = tf.lite.TFLiteConverter.from_saved_model(str(model1))
    else:
        conv = tf.lite.TFLiteConverter.from_keras_model(model1)
    if row.optimize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if row.float16:
        conv.target_spec.supported_types = [tf.float16]
    if row.full_integer:
        if rep_images is None or len(rep_images) == 0:
            raise ExportError(f"{variant} needs calibration images")
        conv.representative_dataset = calibration.representative_dataset(rep_images)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
    return conv


def check_weights(data: bytes, n_params: int, variant: str):
    """Refuse a file too small to hold the model's weights (the silent empty-model failure)."""
    need = int(V.get(variant).min_bytes_per_param * n_params)
    if len(data) < need:
        raise ExportError(f"{variant} model is {len(data)} bytes but the Keras model has {n_params} parameters "
                          f"(expected >= {need} bytes): the weights were not exported")


def parse_variants(variants=None, all_=False):
    """Normalise a variant selection; unknown names are errors."""
    chosen = list(V.EXPORTED if all_ else (variants or ()))
    unknown = [v for v in chosen if v not in V.EXPORTED]
    if unknown:
        raise ExportError(f"unknown variant(s) {', '.join(map(repr, unknown))}; choose from {', '.join(V.EXPORTED)}")
    if not chosen:
        chosen = list(V.CONVERTED)
    if any(V.get(v).source == "compile" for v in chosen) and V.COMPILER_INPUT not in chosen:
        chosen.append(V.COMPILER_INPUT)
    return [v for v in V.EXPORTED if v in chosen]


def _parity_split(manifest, root):
    for split in ("test", "val"):
        files = split_items(manifest, split, root)
        if files:
            return split, files
    return "train", split_items(manifest, "train", root)


def export_run(run_dir, variants=V.CONVERTED, calib_size=calibration.DEFAULT_CALIB_SIZE, seed=0, edgetpu=False,
               allow_cpu_ops=False, min_agreement=parity.MIN_AGREEMENT, max_auroc_drop=parity.MAX_AUROC_DROP,
               progress=True, no_fail=False, skip_bad=False,
               min_type_agreement=parity.MIN_TYPE_AGREEMENT, accept_changes=False) -> dict:
    """Export ``run_dir`` and return the report (also written to RUN/export/export_report.json).

    ``edgetpu``: True compiles for the Edge TPU (error if the compiler is missing),
    "auto" compiles when the compiler is on PATH and notes the skip otherwise.
    ``report["status"]`` is "FAILED" when any variant failed parity or compilation. A run made by
    ``train --update`` also gets ``report["regression"]`` (export/regression.py): its status is
    "GOLDEN_FLIP" when a parent's golden verdict flipped (``accept_changes`` records that it was accepted).
    """
    say = as_progress(progress)
    t0 = time.time()
    run_dir = Path(run_dir)
    info = read_run(run_dir)
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
    manifest = run_manifest(run_dir)
    root = resolve_root(manifest, run_dir / "manifest.json")

    say(f"export {run_dir} ({info['task']}, {h}x{w}, threshold {threshold:.4g}): {', '.join(chosen)}")
    model = load_model(run_dir / "model.keras")
    n_params = int(model.count_params())
    model1 = batch1_model(model, info)

    split, pfiles = _parity_split(manifest, root)
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
        "variants": {}, "created": utc_stamp(),
        "edgeinspect_version": __version__,
    }
    if split != "test":
        report.setdefault("notes", []).append(f"no 'test' split in the manifest; parity measured on '{split}'")
    if tpu_skip:
        report.setdefault("notes", []).append(f"edgetpu skipped: {tpu_skip}")
        say(f"  note: edgetpu skipped: {tpu_skip}")

    rep_images = None
    if "int8" in chosen:
        say(f"calibration set: up to {calib_size} training images, stratified by type, seed {seed}")
        rep_images, cinfo = calibration.calibration_set(split_items(manifest, "train", root), (h, w),
                                                        calib_size=calib_size, seed=seed, skip_bad=skip_bad,
                                                        progress=say, where=run_dir)
        report["calibration"] = cinfo

    report_path = out_dir / "export_report.json"
    _clear_leftovers(out_dir, say)
    # The report says "INCOMPLETE" until the last variant is in: a kill between variants leaves the
    # models written so far beside a report that lists exactly them, never beside an older report.
    report["status"] = "INCOMPLETE"
    atomic_write_json(report_path, report)
    converted, final = {}, {}
    cal_images = cal_ref = None
    # One Keras -> SavedModel step for every variant (the converter would redo it per variant).
    with saved_model_of(model1) as saved:
        todo = [v for v in chosen if V.get(v).source == "convert"]
        if todo and "fp32" not in todo:
            # the float32 file is every variant's float reference for its threshold (and int8's twin)
            say("[fp32] converting (the float reference of the variants' thresholds)...")
            converted["fp32"] = convert(saved if saved is not None else model1, "fp32")
        for variant in todo:
            t = time.time()
            say(f"[{variant}] converting...")
            data, bias = convert_keras(model1, variant, rep_images, fp32=converted.get("fp32"), progress=say,
                                       saved_model=saved)
            converted[variant] = data  # before metadata: int8's bias correction runs against these fp32 bytes
            if bias is not None:
                report["bias_correction"] = bias
            check_weights(data, n_params, variant)
            it = parity.open_interpreter(data)
            it.allocate_tensors()
            meta = build_metadata(info, it, variant)
            if cal_images is None:
                cal_images = _threshold_images(manifest, root, (h, w), rep_images, skip_bad, say)
                # float32 TFLite scores are Keras's to ~1e-6 and 3x cheaper to get than Keras predict
                cal_ref = parity.run_tflite(converted["fp32"], cal_images, task=info["task"])["score"]
                # the variant's threshold reads only the images nearest the float decision: run it on those
                near = nearest_indices(cal_ref, threshold)
                cal_images, cal_ref = cal_images[near], cal_ref[near]
            meta["threshold"], meta["threshold_calibration"] = variant_threshold(
                cal_ref, parity.run_tflite(data, cal_images, meta)["score"], threshold)
            data = with_metadata(data, meta)
            final[variant] = (data, meta)
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
            stale = out_dir / V.get(variant).failed_file
            if path != stale and stale.exists():
                stale.unlink()  # an earlier failed attempt must not linger beside the good file
            entry["seconds"] = round(time.time() - t, 2)
            report["variants"][variant] = entry
            atomic_write_json(report_path, report)
            say(f"[{variant}] {entry['file']}: {entry['size_mb']:.2f} MB, agreement {res['agreement']:.4f}, "
                f"{entry['status']}" + (f" ({'; '.join(res['reasons'])})" if res["reasons"] else ""))

    if want_tpu:
        _edgetpu(report, info, out_dir, allow_cpu_ops, no_fail, say)
    if info.get("lineage") and final:
        from export.regression import compare_with_parent

        say(f"regression check against the parent run {info['lineage'].get('parent_name')}:")
        report["regression"] = compare_with_parent(info, final, (h, w), accept_changes, say)

    report["status"] = "FAILED" if any(v["status"] == "FAILED" for v in report["variants"].values()) else "OK"
    report["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(report_path, report)
    say(parity.format_table(report))
    say(f"report: {report_path}")
    return report


def _clear_leftovers(out_dir, say):
    """Remove the temp files a killed export left (``.<name>.*.tmp`` from ``edge.atomic``)."""
    for tmp in sorted(Path(out_dir).glob(".*.tmp")) if Path(out_dir).is_dir() else []:
        try:
            tmp.unlink()
            say(f"note: removed {tmp.name}, left by an export that did not finish")
        except OSError:
            pass


def _threshold_images(manifest, root, size, rep_images, skip_bad, say):
    """Images each variant's threshold is measured on: the val split plus the int8 calibration images
    (train); never the test split, which judges parity."""
    files = split_items(manifest, "val", root)
    val = calibration.load_images([f["abspath"] for f in files], size, skip_bad=skip_bad, progress=say,
                                  what="threshold images (val split)")[0] if files else None
    parts = [x for x in (val, rep_images) if x is not None and len(x)]
    if not parts:
        train = split_items(manifest, "train", root)[:64]
        parts = [calibration.load_images([f["abspath"] for f in train], size, skip_bad=skip_bad, progress=say,
                                         what="threshold images (train)")[0]]
    return np.concatenate(parts, axis=0)


def _entry(variant, data, meta, res, no_fail):
    failed = res["status"] == "FAILED"
    # Keep a failed variant out of the deployed file name unless told otherwise.
    name = V.get(variant).file if (not failed or no_fail) else V.get(variant).failed_file
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
    say("[edgetpu] compiling the int8 model...")
    entry = {"file": V.get("edgetpu").file}
    try:
        data, parsed = tpu.compile_model(src, out_dir / V.get("edgetpu").file, allow_cpu_ops=allow_cpu_ops, progress=say)
    except tpu.EdgeTPUFallback as exc:
        entry.update(status="FAILED", error=str(exc))
        report["variants"]["edgetpu"] = entry
        report["status"] = "FAILED"
        atomic_write_json(out_dir / "export_report.json", report)
        raise
    meta = dict(read_metadata(src))
    meta.update(variant="edgetpu", model_version=meta["model_version"].rsplit("-", 1)[0] + "-edgetpu")
    data = with_metadata(data, meta)
    atomic_write_bytes(out_dir / V.get("edgetpu").file, data)
    entry.update(size_bytes=len(data), size_mb=len(data) / 1e6, status="OK", model_version=meta["model_version"],
                 ops_on_edgetpu=parsed["ops_on_edgetpu"], ops_on_cpu=parsed["ops_on_cpu"],
                 total_ops=parsed["total_ops"], cpu_ops=parsed["cpu_ops"], compiler_version=parsed["compiler_version"],
                 edgetpu_subgraphs=parsed["edgetpu_subgraphs"], command=parsed["command"],
                 preflight_predicted_mapped=int8.get("edgetpu_preflight", {}).get("ops_mapped"),
                 parity={**int8["parity"], "note": "Edge TPU ops need a TPU to run; the compiler keeps int8 arithmetic, "
                                                   "so these are the int8 variant's numbers"})
    report["variants"]["edgetpu"] = entry
    say(f"[edgetpu] {entry['file']}: {parsed['ops_on_edgetpu']} ops on the Edge TPU, {parsed['ops_on_cpu']} on the CPU"
        + (f" ({tpu.cpu_ops_text(parsed)})" if parsed["ops_on_cpu"] else ""))
