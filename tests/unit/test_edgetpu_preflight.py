"""Static Edge TPU pre-flight: calibrated on Coral's compiled MobileNetV2, one hand-made int8 graph per rule."""
import json

import numpy as np
import pytest

from edge.edgetpu_preflight import CHECKS, GENERAL_CHECKS, check_op, load_rules, predict, preflight, render, summary_line
from edge.errors import ModelError
from edge.tflite_graph import BUILTIN_NAMES, parse_graph

CORAL_INT8 = "mobilenet_v2_1.0_224_quant.tflite"
CORAL_COMPILED = "mobilenet_v2_1.0_224_quant_edgetpu.tflite"


# --- Coral's own models: the calibration point -------------------------------------------------------------

def test_coral_mobilenet_v2_is_predicted_all_mapped(coral_dir):
    r = preflight(coral_dir / CORAL_INT8)
    g = parse_graph(coral_dir / CORAL_INT8)
    assert r["kind"] == "prediction" and r["int8"]
    assert r["first_cpu_op"] is None and r["cpu_ops"] == [] and r["boundary_ops"] == []
    assert r["ops_mapped"] == r["ops_total"] == len(g["operators"]) == 66
    assert r["summary"] == "Edge TPU: predicted 66/66 ops mapped"
    # MobileNetV2 1.0 at 224 is ~300 M multiply-accumulates (its paper); all of them on the Edge TPU.
    assert 295e6 < r["macs"]["edgetpu"] < 305e6 and r["macs"]["cpu"] == 0
    weights = sum(t["bytes"] for t in g["tensors"] if t["constant"])
    assert r["param_bytes"] == {"edgetpu": weights, "cpu": 0}
    assert 3.4e6 < weights < 3.6e6  # 3.5 M uint8 weights + int32 biases
    cache = r["parameter_cache"]
    assert cache["on_chip_bytes"] == weights and cache["streamed_bytes"] == 0


def test_compiled_twin_reports_what_the_compiler_accepted(coral_dir):
    """The compiled file holds one edgetpu-custom-op and nothing else: consistent with 'all ops mapped'."""
    r = preflight(coral_dir / CORAL_COMPILED)
    assert r["kind"] == "compiled" and r["custom_ops"] == 1 and r["ops_outside"] == []
    assert r["summary"] == "Edge TPU: compiled (1 edgetpu-custom-op, no op left on the CPU)"
    # The custom op carries the compiled code plus the parameters the int8 source declares.
    assert r["compiled_bytes"] > preflight(coral_dir / CORAL_INT8)["param_bytes"]["edgetpu"]
    src, dst = parse_graph(coral_dir / CORAL_INT8), parse_graph(coral_dir / CORAL_COMPILED)
    shapes = lambda g, ids: [g["tensors"][i]["shape"] for i in ids]  # noqa: E731
    assert shapes(src, src["inputs"]) == shapes(dst, dst["inputs"])
    assert shapes(src, src["outputs"]) == shapes(dst, dst["outputs"])


def test_builtin_names_match_the_tflite_schema():
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    assert list(BUILTIN_NAMES) == [codes[i] for i in range(len(BUILTIN_NAMES))]


def test_rule_file_names_a_source_for_every_rule_and_only_known_checks():
    rules = load_rules()
    for key, rule in rules["general"].items():
        assert rule["rule"] and rule["source"] and rule["basis"] in ("seen", "heuristic"), key
    for op, row in rules["ops"].items():
        assert op in BUILTIN_NAMES, op
        assert row["basis"] in ("seen", "recalled"), op
        assert set(row.get("checks", ())) <= set(CHECKS), op
        own = set(row.get("checks", ())) - set(GENERAL_CHECKS)
        assert not own or row.get("note"), f"{op}: a check needs Coral's note it enforces"
    assert set(CHECKS) == {c for row in rules["ops"].values() for c in row.get("checks", ())}
    assert set(GENERAL_CHECKS.values()) <= set(rules["general"])
    assert rules["parameter_cache"]["usable_bytes"] < rules["parameter_cache"]["nominal_bytes"]


def test_not_a_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match=r"x\.tflite: not a TFLite model"):
        preflight(bad)


# --- Where users look: doctor MODEL and predict's header ------------------------------------------------------

def test_doctor_model_prints_the_op_summary_and_cache_estimate(coral_dir):
    from click.testing import CliRunner

    from edge.cli import main

    r = CliRunner().invoke(main, ["doctor", str(coral_dir / CORAL_INT8)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "Edge TPU: predicted 66/66 ops mapped (a prediction from Coral's op table, not a compile)" in lines
    cache = next(line for line in lines if line.strip().startswith("parameter cache"))
    assert "3.54 MB on chip, 0.00 MB streamed" in cache
    assert "verdict" in r.output  # the machine report is still there
    rep = json.loads(CliRunner().invoke(main, ["doctor", "--json", str(coral_dir / CORAL_COMPILED)]).output)
    assert rep["edgetpu_preflight"]["kind"] == "compiled" and rep["edgetpu_preflight"]["custom_ops"] == 1


def test_doctor_with_a_bad_model_is_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from edge.cli import main

    bad = tmp_path / "notes.tflite"
    bad.write_text("not a model at all")
    r = CliRunner().invoke(main, ["doctor", str(bad)])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == f"Error: {bad}: not a TFLite model (no 'TFL3' identifier); " \
                                                "pass a .tflite file written by 'edgeinspect export'"


def test_predict_header_shows_the_edgetpu_summary(coral_dir):
    from click.testing import CliRunner

    from edge.cli import main

    r = CliRunner().invoke(main, ["predict", str(coral_dir / CORAL_INT8), str(coral_dir / "cat.bmp"),
                                  "--labels", str(coral_dir / "imagenet_labels.txt")])
    assert r.exit_code == 0, r.output
    head = r.output.splitlines()
    assert head[0].startswith("model ") and head[1].startswith("Edge TPU: predicted 66/66 ops mapped")
    assert head[2].startswith("path")


# --- Rules over hand-written graphs (pure: no TFLite file) ----------------------------------------------------

def _graph(ops, tensors, inputs=(0,), outputs=None):
    """tensors: {id: (shape, dtype, constant, values)}; ops: [(op, inputs, outputs, options)]."""
    ts = []
    for i in range(max(tensors) + 1):
        shape, dtype, const, values = tensors[i]
        ts.append({"name": f"t{i}", "shape": list(shape), "signature": list(shape), "dtype": dtype, "constant": const,
                   "bytes": int(np.prod(shape or [1])) * (4 if dtype in ("int32", "float32") else 1) if const else 0,
                   "values": values, "elements": int(np.prod(shape or [1]))})
    ops = [{"index": i, "op": op, "custom": False, "version": 1, "inputs": list(ins), "outputs": list(outs),
            "options": dict(opts), "custom_bytes": 0} for i, (op, ins, outs, opts) in enumerate(ops)]
    return {"name": "<test>", "tensors": ts, "operators": ops, "inputs": list(inputs),
            "outputs": list(outputs if outputs is not None else ops[-1]["outputs"])}


def act(shape, dtype="int8"):
    return (shape, dtype, False, None)


def const(shape, dtype="int8", values=None):
    return (shape, dtype, True, values)


CONV = {"fused_activation": 3, "dilation_w": 1, "dilation_h": 1}


def _why(g, index):
    return " ".join(r["why"] for r in check_op(g["operators"][index], g))


def test_partition_once_later_mappable_ops_go_to_the_cpu():
    g = _graph([("CONV_2D", (0, 1, 2), (3,), CONV), ("MEAN", (3, 4), (5,), {}), ("CONV_2D", (5, 6, 7), (8,), CONV)],
               {0: act((1, 8, 8, 3)), 1: const((4, 1, 1, 3)), 2: const((4,), "int32"), 3: act((1, 8, 8, 4)),
                4: const((1,), "int32", [3]), 5: act((1, 8, 8)), 6: const((2, 1, 1, 8)), 7: const((2,), "int32"),
                8: act((1, 8, 8, 2))})
    r = predict(g)
    assert r["first_cpu_op"]["index"] == 1 and r["first_cpu_op"]["op"] == "MEAN"
    assert "reduces over z" in r["first_cpu_op"]["reasons"][0]["why"]
    assert "x- and/or y-dimensions" in r["first_cpu_op"]["reasons"][0]["rule"]
    assert [c["index"] for c in r["cpu_ops"]] == [1, 2] and r["cpu_ops"][1]["reasons"] == []  # mappable, yet CPU
    assert r["ops_mapped"] == 1
    assert r["macs"] == {"edgetpu": 8 * 8 * 4 * 3, "cpu": 8 * 8 * 2 * 8}
    assert r["param_bytes"] == {"edgetpu": 12 + 16, "cpu": 4 + 16 + 8}
    assert summary_line(r).startswith("Edge TPU: predicted 1/3 ops mapped; first CPU op #1 MEAN (reduces over z")


def test_mean_over_x_and_y_maps():
    g = _graph([("MEAN", (0, 1), (2,), {})], {0: act((1, 7, 7, 8)), 1: const((2,), "int32", [1, 2]), 2: act((1, 8))})
    assert check_op(g["operators"][0], g) == []


@pytest.mark.parametrize("op, opts, expect", [
    ("AVERAGE_POOL_2D", {"fused_activation": 1}, "fused activation RELU"),
    ("MAX_POOL_2D", {"fused_activation": 3}, "fused activation RELU6"),
])
def test_pools_take_no_fused_activation(op, opts, expect):
    g = _graph([(op, (0,), (1,), opts)], {0: act((1, 8, 8, 4)), 1: act((1, 4, 4, 4))})
    assert expect in _why(g, 0)


def test_conv_needs_the_same_dilation_and_constant_weights():
    g = _graph([("CONV_2D", (0, 1, 2), (3,), {**CONV, "dilation_w": 2})],
               {0: act((1, 8, 8, 3)), 1: const((4, 3, 3, 3)), 2: const((4,), "int32"), 3: act((1, 8, 8, 4))})
    assert "dilation 1x2" in _why(g, 0)
    g = _graph([("CONV_2D", (0, 1, 2), (3,), CONV)],
               {0: act((1, 8, 8, 3)), 1: act((4, 1, 1, 3)), 2: const((4,), "int32"), 3: act((1, 8, 8, 4))})
    assert "weights/bias t1 not constant" in _why(g, 0)


def test_float_weights_and_dynamic_shapes_do_not_map():
    g = _graph([("FULLY_CONNECTED", (0, 1), (2,), {})], {0: act((1, 8)), 1: const((3, 8), "float32"), 2: act((1, 3))})
    assert "float32 constant t1 (not quantized)" in _why(g, 0)
    g["tensors"][1].update(dtype="int8")
    g["tensors"][0]["signature"] = [-1, 8]
    assert "dynamic shape (-1, 8)" in _why(g, 0)


def test_strided_slice_pad_softmax_and_concat_conditions():
    g = _graph([("STRIDED_SLICE", (0, 1, 2, 3), (4,), {"ellipsis_mask": 0, "new_axis_mask": 0})],
               {0: act((1, 8, 8, 4)), 1: const((4,), "int32", [0] * 4), 2: const((4,), "int32", [1, 8, 8, 4]),
                3: const((4,), "int32", [1, 2, 2, 1]), 4: act((1, 4, 4, 4))})
    assert "strides [1, 2, 2, 1] are not all 1" in _why(g, 0)
    g["tensors"][3]["values"] = [1, 1, 1, 1]
    assert check_op(g["operators"][0], g) == []

    g = _graph([("PAD", (0, 1), (2,), {})], {0: act((1, 8, 8, 4)), 1: const((4, 2), "int32", [0, 0, 1, 1, 1, 1, 0, 4]),
                                            2: act((1, 10, 10, 8))})
    assert "pads along z" in _why(g, 0)

    g = _graph([("SOFTMAX", (0,), (1,), {})], {0: act((1, 20000)), 1: act((1, 20000))})
    assert "20000 elements (max 16,000)" in _why(g, 0)
    g = _graph([("SOFTMAX", (0,), (1,), {})], {0: act((1, 4, 5)), 1: act((1, 4, 5))})
    assert "is not 1-D" in _why(g, 0)

    g = _graph([("CONCATENATION", (0, 1, 2), (3,), {"fused_activation": 0})],
               {0: act((1, 4, 4, 2)), 1: const((1, 4, 4, 2)), 2: act((1, 4, 4, 2)), 3: act((1, 4, 4, 6))})
    assert "1 constant input(s) among 3" in _why(g, 0)


def test_float_input_quantize_stays_on_the_cpu_without_splitting():
    g = _graph([("QUANTIZE", (0,), (1,), {}), ("CONV_2D", (1, 2, 3), (4,), CONV), ("DEQUANTIZE", (4,), (5,), {})],
               {0: act((1, 8, 8, 3), "float32"), 1: act((1, 8, 8, 3)), 2: const((4, 1, 1, 3)),
                3: const((4,), "int32"), 4: act((1, 8, 8, 4)), 5: act((1, 8, 8, 4), "float32")})
    r = predict(g)
    assert r["first_cpu_op"] is None and r["int8"]
    assert [b["op"] for b in r["boundary_ops"]] == ["QUANTIZE", "DEQUANTIZE"]
    assert r["ops_mapped"] == 1 and r["summary"] == "Edge TPU: predicted 1/3 ops mapped"


def test_parameter_cache_split_streams_what_does_not_fit():
    big = 9_000_000
    g = _graph([("FULLY_CONNECTED", (0, 1), (2,), {})], {0: act((1, big // 1000)), 1: const((1000, big // 1000)),
                                                        2: act((1, 1000))})
    r = predict(g)
    c = r["parameter_cache"]
    assert c["on_chip_bytes"] == load_rules()["parameter_cache"]["usable_bytes"]
    assert c["on_chip_bytes"] + c["streamed_bytes"] == big
    assert any("streamed per inference" in line and f"{(big - c['on_chip_bytes']) / 1e6:.2f} MB" in line
               for line in render(r))


# --- Hand-made int8 graphs, converted by TensorFlow: one per rule ---------------------------------------------

def _convert(model, int8=True):
    from trainer.tfutil import import_tf

    tf = import_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        shape = (1,) + tuple(model.input.shape[1:])

        def rep():
            for _ in range(8):
                yield [rng.uniform(-1, 1, shape).astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


@pytest.fixture(scope="module")
def handmade():
    from trainer.tfutil import import_keras

    keras = import_keras()
    L = keras.layers

    def seq(shape, *layers):
        inp = keras.Input(shape, batch_size=1)
        x = inp
        for layer in layers:
            x = layer(x)
        return keras.Model(inp, x)

    models = {
        "fc_2d_output": seq((4, 8), L.Dense(3)),  # FULLY_CONNECTED on (1, 4, 8) -> (1, 4, 3)
        "fc_1d_output": seq((8,), L.Dense(3)),
        "resize_9_of_6": seq((6, 6, 4), L.Conv2D(4, 1), L.Resizing(9, 9, interpolation="bilinear"), L.Conv2D(4, 1)),
        "resize_2x": seq((6, 6, 4), L.Conv2D(4, 1), L.Resizing(12, 12, interpolation="bilinear"), L.Conv2D(4, 1)),
        "five_d": seq((8, 8, 3), L.Conv2D(4, 1), L.Reshape((2, 4, 8, 4)), L.Rescaling(2.0, offset=0.5),
                      L.Reshape((8, 8, 4)), L.Conv2D(2, 1)),
        "leaky_relu": seq((8, 8, 3), L.Conv2D(4, 1), L.LeakyReLU(0.1), L.Conv2D(2, 1)),
    }
    out = {name: _convert(m) for name, m in models.items()}
    out["float32"] = _convert(models["leaky_relu"], int8=False)
    return out


def _first(report):
    f = report["first_cpu_op"]
    return (f["index"], f["op"], " ".join(r["why"] for r in f["reasons"])) if f else None


@pytest.mark.slow
def test_fully_connected_with_a_2d_output_goes_to_the_cpu(handmade):
    r = preflight(handmade["fc_2d_output"])
    assert _first(r) == (0, "FULLY_CONNECTED", "output (1, 4, 3) is not one-dimensional")
    assert r["ops_mapped"] == 0 and r["macs"]["cpu"] == 4 * 3 * 8
    assert preflight(handmade["fc_1d_output"])["summary"] == "Edge TPU: predicted 1/1 ops mapped"


@pytest.mark.slow
def test_bilinear_resize_by_a_non_integer_factor_goes_to_the_cpu(handmade):
    r = preflight(handmade["resize_9_of_6"])
    index, op, why = _first(r)
    assert (op, why) == ("RESIZE_BILINEAR", "6x6 -> 9x9 is not an integer up-scaling (may lose precision on the Edge TPU)")
    assert [c["op"] for c in r["cpu_ops"]] == ["RESIZE_BILINEAR", "CONV_2D"] and r["ops_mapped"] == index
    r = preflight(handmade["resize_2x"])
    assert r["first_cpu_op"] is None  # 2x maps by the table, but the compiler may still refuse: said so
    assert [u["op"] for u in r["uncertain"]] == ["RESIZE_BILINEAR"]


@pytest.mark.slow
def test_a_tensor_with_more_than_three_dimensions_above_one_goes_to_the_cpu(handmade):
    r = preflight(handmade["five_d"])
    index, op, why = _first(r)
    assert op == "RESHAPE" and "(1, 2, 4, 8, 4) has more than 3 dimensions above 1" in why
    assert r["ops_mapped"] == index == 1


@pytest.mark.slow
def test_an_op_outside_coral_table_goes_to_the_cpu(handmade):
    r = preflight(handmade["leaky_relu"])
    assert _first(r) == (1, "LEAKY_RELU", "op LEAKY_RELU is not in Coral's supported-operations table")
    assert r["summary"].startswith("Edge TPU: predicted 1/3 ops mapped; first CPU op #1 LEAKY_RELU")


@pytest.mark.slow
def test_a_float32_model_is_not_edgetpu_ready(handmade):
    r = preflight(handmade["float32"])
    assert r["int8"] is False and r["ops_mapped"] == 0
    assert r["summary"].startswith("Edge TPU: not ready, float model (needs the full-integer int8 variant)")
    assert "float32 tensor" in _first(r)[2]
    json.dumps(r)  # the report goes into export_report.json as is
