"""``L2Normalize(lowering="rsqrt")``: the same maths as L2_NORMALIZATION, in ops LiteRT runs fast in int8."""
import numpy as np
import pytest

from trainer.anomaly import layers as L
from trainer.tfutil import import_keras

keras = import_keras()


def _features(n, seed=0):
    # unit-ish patch features with per-cell norms between 0.5 and 1, as the local pool leaves them
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return (x * rng.uniform(0.5, 1.0, size=(n, 6, 6, 1))).astype(np.float32)


def _model(lowering):
    inp = keras.Input((6, 6, 16), batch_size=1)
    return keras.Model(inp, L.L2Normalize(lowering=lowering, name="unit")(inp))


def test_both_lowerings_give_the_same_unit_vectors():
    x = _features(4)
    old = np.concatenate([np.asarray(_model("l2_normalization")(x[i:i + 1])) for i in range(4)])
    new = np.concatenate([np.asarray(_model("rsqrt")(x[i:i + 1])) for i in range(4)])
    np.testing.assert_allclose(new, old, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(new, axis=-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="choose from"):
        L.L2Normalize(lowering="sqrt")


def test_lowering_survives_save_and_old_configs_load_as_before(tmp_path):
    model = _model("rsqrt")
    model.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras")
    assert back.get_layer("unit").lowering == "rsqrt"
    cfg = L.L2Normalize(name="old").get_config()
    cfg.pop("lowering")  # a model.keras written before the option existed
    assert L.L2Normalize.from_config(cfg).lowering == "l2_normalization"


def test_rsqrt_lowering_converts_to_edge_tpu_ops_and_stays_accurate_in_int8():
    from ai_edge_litert.interpreter import Interpreter

    from edge.edgetpu_preflight import preflight
    from trainer.tfutil import import_tf

    tf = import_tf()
    rep = _features(16, seed=1)
    conv = tf.lite.TFLiteConverter.from_keras_model(_model("rsqrt"))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    ops = {d["op_name"] for d in it._get_ops_details()}
    assert "RSQRT" in ops and "L2_NORMALIZATION" not in ops and "SQUARE" not in ops
    assert preflight(data)["first_cpu_op"] is None
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = _features(6, seed=2)
    s, z = inp["quantization"]
    so, zo = out["quantization"]
    err = []
    for img in x:
        it.set_tensor(inp["index"], np.clip(np.round(img[None] / s + z), -128, 127).astype(np.int8))
        it.invoke()
        q = (it.get_tensor(out["index"]).astype(np.float32) - zo) * so
        err.append(np.abs(q[0] - img / np.linalg.norm(img, axis=-1, keepdims=True)).mean())
    assert np.mean(err) < 0.02  # one int8 step of a unit vector's components is 1/128
