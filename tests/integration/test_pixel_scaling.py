"""The in-graph pixel scaling: x/127.5 - 1 in float, and all 256 grey levels kept in the int8 file."""
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _model(keras):
    from trainer.layers import pixel_scaling

    inp = keras.Input((16, 16, 3), batch_size=1, dtype="float32", name="pixels")
    x = pixel_scaling("scale")(inp)
    out = keras.layers.Conv2D(4, 1, name="head")(x)
    return keras.Model(inp, [x, out])


def test_float_is_the_affine_scaling():
    from edge.preprocess import OFFSET, SCALE
    from trainer.tfutil import import_keras

    keras = import_keras()
    m = _model(keras)
    px = np.arange(16 * 16 * 3, dtype=np.float32).reshape(1, 16, 16, 3) % 256
    scaled = np.asarray(m(px)[0])
    np.testing.assert_allclose(scaled, px * np.float32(SCALE) + np.float32(OFFSET), atol=1e-6)
    assert not m.get_layer("scale").trainable_weights  # fine-tuning never moves the pixel scaling


def test_int8_keeps_every_grey_level():
    """Rescaling's MUL + ADD put the pixels on 170 int8 levels; the 1x1 depthwise conv must keep 256."""
    from ai_edge_litert.interpreter import Interpreter

    from export.convert import convert_keras
    from trainer.tfutil import import_keras

    keras = import_keras()
    ramp = (np.arange(16 * 16 * 3) % 256).astype(np.uint8).reshape(1, 16, 16, 3)
    rep = np.concatenate([ramp, ramp[:, ::-1], 255 - ramp])
    data, _ = convert_keras(_model(keras), "int8", rep, bias_correct=False)
    it = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    ops = [o for o in it._get_ops_details() if o["op_name"] != "QUANTIZE"]
    assert ops[0]["op_name"] == "DEPTHWISE_CONV_2D"
    out = {d["index"]: d for d in it.get_tensor_details()}[ops[0]["outputs"][0]]
    scale, _ = out["quantization"]
    assert scale == pytest.approx(2 / 255, rel=1e-3)
    it.set_tensor(it.get_input_details()[0]["index"], ramp)
    it.invoke()
    q = it.get_tensor(out["index"]).reshape(-1)
    pairs = set(zip(ramp.reshape(-1).tolist(), q.tolist()))
    assert len(pairs) == 256 and len(set(q.tolist())) == 256  # one int8 level per grey level, none merged
