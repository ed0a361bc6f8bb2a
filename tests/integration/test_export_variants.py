"""Real conversions of tiny runs: dtypes, metadata, weights, parity failure, atomic writes, Edge TPU flow."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.metadata import read_metadata
from edge.tflite_graph import parse_graph

pytestmark = pytest.mark.slow

FLOAT_IN = {"fp32": np.float32, "fp16": np.float32, "dynamic": np.float32, "int8": np.uint8}


def _interp(path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def _copy_run(run_dir, dest):
    """A private copy of a session run (same images: the manifest root is absolute), without exports."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("export"))
    return dest


@pytest.mark.parametrize("task", ["classifier", "anomaly"])
def test_variants_dtypes_and_metadata(task, request):
    exports = request.getfixturevalue(f"tiny_{task}_exports")
    run = request.getfixturevalue(f"export_{task}_run")
    info = json.loads((run / "run.json").read_text())
    report = json.loads(exports["report"].read_text())
    assert set(report["variants"]) == {"fp32", "fp16", "dynamic", "int8"}
    for variant in ("fp32", "fp16", "dynamic", "int8"):
        path = exports[variant]
        assert path.name == f"model_{variant}.tflite" and path.parent == run / "export"
        meta = read_metadata(path)  # struct-only reader: no TensorFlow needed on the device
        it = _interp(path)
        inp = it.get_input_details()[0]
        assert tuple(inp["shape"]) == (1, 96, 96, 3) and tuple(inp["shape_signature"]) == (1, 96, 96, 3)
        assert inp["dtype"] == FLOAT_IN[variant]
        assert meta["format"] == "edgeinspect" and meta["schema_version"] == 1
        assert (meta["task"], meta["labels"]) == (task, info["labels"])
        # each variant decides at its own threshold: the run's, moved by its measured logit shift
        cal = meta["threshold_calibration"]
        assert cal["float_threshold"] == info["threshold"] and cal["n"] > 0
        shift = np.log(meta["threshold"] / (1 - meta["threshold"])) - np.log(info["threshold"] / (1 - info["threshold"]))
        assert shift == pytest.approx(cal["shift_logit"], abs=1e-6)
        assert meta["threshold"] == report["variants"][variant]["parity"]["threshold"]
        assert meta["manifest_sha256"] == info["manifest_sha256"] and meta["run"] == info["name"]
        assert meta["variant"] == variant and meta["model_version"].endswith(f"-{info['manifest_sha256'][:8]}-{variant}")
        assert meta["input"]["semantics"] == "raw_pixels" and meta["input"]["dtype"] == np.dtype(inp["dtype"]).name
        assert meta["preprocess"]["input_height"] == 96 and meta["threshold_policy"] == info["threshold_policy"]
        outs = it.get_output_details()
        score, other = outs[meta["outputs"]["score"]], outs[meta["outputs"]["types" if task == "classifier" else "map"]]
        assert tuple(score["shape"]) == (1, 1)
        if task == "classifier":
            assert tuple(other["shape"]) == (1, len(info["labels"]))
        else:
            assert len(other["shape"]) == 3
        out_dtype = np.uint8 if variant == "int8" else np.float32
        assert score["dtype"] == out_dtype and other["dtype"] == out_dtype
        assert meta["output_quantization"]["score"] == [pytest.approx(score["quantization"][0]), score["quantization"][1]]
        if variant == "int8":
            # raw pixels straight from the camera: the calibration extremes pin scale 1 / zero point 0
            assert (meta["input"]["scale"], meta["input"]["zero_point"]) == (1.0, 0) == inp["quantization"]
    v = report["variants"]
    assert v["fp32"]["parity"]["agreement"] == 1.0 and v["fp32"]["parity"]["max_abs_score_diff"] < 1e-4
    assert v["fp16"]["parity"]["agreement"] == 1.0
    assert v["int8"]["parity"]["agreement"] >= 0.9 and v["int8"]["parity"]["spearman"] > 0.8
    assert v["int8"]["size_bytes"] < 0.6 * v["fp32"]["size_bytes"]
    assert report["parity_split"] == "test" and report["calibration"]["per_type"]["good"] >= 1


def test_exports_carry_their_weights(tiny_classifier_exports, export_classifier_run):
    """A weightless export (Keras 3 + from_concrete_functions) would be tiny and answer like a fresh model."""
    from trainer.layers import load_model
    from trainer.tfutil import import_keras

    keras = import_keras()
    model = load_model(export_classifier_run / "model.keras")
    n = model.count_params()
    sizes = {v: tiny_classifier_exports[v].stat().st_size for v in ("fp32", "fp16", "dynamic", "int8")}
    assert sizes["fp32"] >= 2.5 * n and sizes["fp16"] >= 1.2 * n and sizes["int8"] >= 0.5 * n
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (1, 96, 96, 3)).astype(np.float32)
    x[0, 30:45, 30:45] = (220, 40, 40)
    it = _interp(tiny_classifier_exports["fp32"])
    meta = read_metadata(tiny_classifier_exports["fp32"])
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    types = it.get_tensor(it.get_output_details()[meta["outputs"]["types"]]["index"])
    want = model.predict(x, verbose=0)["type"]
    fresh = keras.models.clone_model(model)  # same graph, re-initialised weights
    other = fresh.predict(x, verbose=0)["type"]
    np.testing.assert_allclose(types, want, atol=1e-4)
    assert np.abs(types - other).max() > 1e-3


def test_impossible_agreement_exits_2_and_keeps_deployed_file(export_classifier_run, tmp_path):
    run = _copy_run(export_classifier_run, tmp_path / "run")
    deployed = run / "export" / "model_fp32.tflite"
    deployed.parent.mkdir()
    deployed.write_bytes(b"previous good model")
    res = CliRunner().invoke(main, ["export", str(run), "--fp32", "--min-agreement", "1.01"])
    assert res.exit_code == 2, res.output
    assert "parity FAILED: fp32" in res.output
    report = json.loads((run / "export" / "export_report.json").read_text())
    assert report["status"] == "FAILED" and report["variants"]["fp32"]["status"] == "FAILED"
    assert "verdict agreement 1.0000 < 1.01" in report["variants"]["fp32"]["parity"]["reasons"]
    assert deployed.read_bytes() == b"previous good model"  # a failed variant never replaces a deployed one
    assert read_metadata(run / "export" / "model_fp32.failed.tflite")["variant"] == "fp32"
    ok = CliRunner().invoke(main, ["export", str(run), "--fp32", "--min-agreement", "1.01", "--no-fail", "-q"])
    assert ok.exit_code == 0 and "Variant | Size MB" in ok.output
    assert read_metadata(deployed)["variant"] == "fp32"


def test_failure_midway_leaves_old_file_intact(export_classifier_run, tmp_path, monkeypatch):
    import export.convert as conv

    run = _copy_run(export_classifier_run, tmp_path / "run")
    (run / "export").mkdir()
    old = run / "export" / "model_fp32.tflite"
    old.write_bytes(b"old model bytes")

    def boom(data, meta):
        raise RuntimeError("disk full while tagging")

    monkeypatch.setattr(conv, "with_metadata", boom)
    with pytest.raises(RuntimeError):
        conv.export_run(run, variants=("fp32",), progress=False)
    assert old.read_bytes() == b"old model bytes"
    # no temp or half files; the report says the export did not finish instead of vouching for old files
    assert sorted(p.name for p in (run / "export").iterdir()) == ["export_report.json", "model_fp32.tflite"]
    report = json.loads((run / "export" / "export_report.json").read_text())
    assert report["status"] == "INCOMPLETE" and report["variants"] == {}


def test_a_kill_between_variants_leaves_a_report_of_exactly_what_was_written(export_classifier_run, tmp_path,
                                                                              monkeypatch):
    import export.convert as conv

    run = _copy_run(export_classifier_run, tmp_path / "run")
    (run / "export").mkdir()
    (run / "export" / "export_report.json").write_text(json.dumps({"status": "OK", "variants": {"int8": {}}}))
    stale = run / "export" / ".model_int8.tflite.abc123.tmp"   # what a SIGKILL mid-write leaves
    stale.write_bytes(b"half a model")
    real = conv.convert_keras

    def killed_at_int8(model1, variant, *a, **k):
        if variant == "int8":
            raise KeyboardInterrupt  # stands for the kill: nothing after this line runs
        return real(model1, variant, *a, **k)

    monkeypatch.setattr(conv, "convert_keras", killed_at_int8)
    with pytest.raises(KeyboardInterrupt):
        conv.export_run(run, variants=("fp32", "int8"), progress=False)
    assert not stale.exists()
    report = json.loads((run / "export" / "export_report.json").read_text())
    assert report["status"] == "INCOMPLETE" and set(report["variants"]) == {"fp32"}
    assert sorted(p.name for p in (run / "export").iterdir()) == ["export_report.json", "model_fp32.tflite"]


def test_edgetpu_end_to_end_with_standin_compiler(export_classifier_run, standin, tmp_path, monkeypatch):
    run = _copy_run(export_classifier_run, tmp_path / "run")
    res = CliRunner().invoke(main, ["export", str(run), "--edgetpu", "--calib-size", "12", "--min-agreement", "0.8",
                                  "--min-type-agreement", "0.8"])  # parity of a 96-px toy is not under test here
    assert res.exit_code == 0, res.output
    assert "52 ops on the Edge TPU, 0 on the CPU" in res.output
    compiled = run / "export" / "model_int8_edgetpu.tflite"
    meta = read_metadata(compiled)
    int8 = read_metadata(run / "export" / "model_int8.tflite")
    assert meta["variant"] == "edgetpu" and meta["model_version"].endswith("-edgetpu")
    assert {k: v for k, v in meta.items() if k not in ("variant", "model_version")} == \
           {k: v for k, v in int8.items() if k not in ("variant", "model_version")}
    report = json.loads((run / "export" / "export_report.json").read_text())
    e = report["variants"]["edgetpu"]
    assert (e["ops_on_edgetpu"], e["ops_on_cpu"], e["status"]) == (52, 0, "OK")
    # The static pre-flight ran on the int8 variant, was printed, and sits beside the compiler's answer.
    pre = report["variants"]["int8"]["edgetpu_preflight"]
    assert pre["kind"] == "prediction" and pre["int8"] and pre["summary"] in res.output
    assert pre["ops_total"] == len(parse_graph(run / "export" / "model_int8.tflite")["operators"])
    assert e["preflight_predicted_mapped"] == pre["ops_mapped"]
    assert report["calibration"]["n"] == 12
    assert sorted(p.name for p in (run / "export").iterdir()) == [
        "export_report.json", "model_int8.tflite", "model_int8_edgetpu.tflite"]

    monkeypatch.setenv("STANDIN_CPU_OPS", "3")
    from export import edgetpu

    with pytest.raises(edgetpu.EdgeTPUFallback, match=r"3 of 55 ops would run on the CPU, not the Edge TPU: MEAN x3 \(Operation is otherwise supported[^;]*; change the model"):
        edgetpu.compile_model(run / "export" / "model_int8.tflite", compiled)
    assert read_metadata(compiled)["variant"] == "edgetpu"  # untouched by the refused compile


def test_dynamic_batch_model_is_refused_for_edgetpu(tmp_path):
    from export import edgetpu
    from export.errors import ExportError
    from trainer.tfutil import import_keras, import_tf

    keras, tf = import_keras(), import_tf()
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(2, 3)(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)  # batch left dynamic on purpose
    p = tmp_path / "model_int8.tflite"
    from export.quiet import captured_output

    with captured_output():
        p.write_bytes(conv.convert())
    with pytest.raises(ExportError, match=r"dynamic shape \[-1, 8, 8, 3\].*batch must be exactly 1"):
        edgetpu.check_static_shapes(p)


def test_float32_is_converted_once_and_is_the_int8_bias_correction_twin(export_classifier_run, tmp_path, monkeypatch):
    """export_run reuses the float32 bytes for int8's bias correction instead of converting twice."""
    from export import bias_correct
    from export import convert as conv

    run = _copy_run(export_classifier_run, tmp_path / "run")
    calls, twins = [], []
    real_convert, real_correct = conv.convert, bias_correct.correct_bias

    def counting_convert(model1, variant, rep_images=None):
        calls.append((variant, real_convert(model1, variant, rep_images)))
        return calls[-1][1]

    monkeypatch.setattr(conv, "convert", counting_convert)
    monkeypatch.setattr(bias_correct, "correct_bias",
                        lambda i8, f32, imgs, **kw: twins.append(f32) or real_correct(i8, f32, imgs, **kw))
    report = conv.export_run(run, variants=("fp32", "int8"), calib_size=16, progress=False, no_fail=True)
    assert [v for v, _ in calls] == ["fp32", "int8"]
    assert len(twins) == 1 and twins[0] is calls[0][1]  # the very bytes converted as the fp32 variant
    assert report["bias_correction"]["layers"] > 0 and set(report["variants"]) == {"fp32", "int8"}


def test_one_saved_model_for_every_variant_converts_to_the_same_graph(export_classifier_run):
    """The SavedModel written once per export (export.convert.saved_model_of) converts to the model the
    converter's own Keras path makes: same tensors, same outputs, bit for bit."""
    from ai_edge_litert.interpreter import Interpreter

    from export.convert import batch1_model, convert, saved_model_of
    from trainer.layers import load_model

    model1 = batch1_model(load_model(export_classifier_run / "model.keras"))
    direct = convert(model1, "fp32")
    with saved_model_of(model1) as saved:
        via = convert(saved, "fp32")
    x = np.random.default_rng(0).integers(0, 256, tuple(model1.inputs[0].shape)).astype(np.float32)
    outs = []
    for data in (direct, via):
        it = Interpreter(model_content=data)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outs.append(([d["name"] for d in it.get_tensor_details()],
                     [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]))
    assert len(direct) == len(via) and outs[0][0] == outs[1][0]
    for a, b in zip(outs[0][1], outs[1][1]):
        np.testing.assert_array_equal(a, b)
