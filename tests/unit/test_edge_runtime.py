"""EdgeModel on real TFLite files without TensorFlow: Coral's ImageNet int8 model as a plain
classifier, preprocessing parity with the trainer, and metadata/model mismatches."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from edge.errors import ImageError, ModelError
from edge.imageio import load_image
from edge.metadata import with_metadata
from edge.runtime import EdgeModel, read_labels
from tests.fixtures.common import CORAL_DIR

CPU = CORAL_DIR / "mobilenet_v2_1.0_224_quant.tflite"
TPU = CORAL_DIR / "mobilenet_v2_1.0_224_quant_edgetpu.tflite"
LABELS = CORAL_DIR / "imagenet_labels.txt"


@pytest.fixture(scope="module")
def coral():
    return EdgeModel(CPU, labels=LABELS, threads=1)


def test_coral_int8_model_calls_the_cat_an_egyptian_cat(coral):
    p = coral.predict(CORAL_DIR / "cat.bmp")
    assert coral.task == "plain" and coral.input_size == (224, 224) and coral.input_dtype == np.uint8
    assert p.defect_type == "Egyptian cat" and p.top[0][0] == "Egyptian cat"
    assert p.type_prob == pytest.approx(0.789, abs=0.01)  # the reference probability (README)
    assert p.verdict == "-"  # no "good" label: a plain classifier gives no verdict
    assert [label for label, _ in p.top[1:3]] == ["tabby, tabby cat", "tiger cat"]
    assert p.latency_ms > 0 and p.anomaly_map is None


@pytest.mark.parametrize("image,label", [("bird.bmp", "chickadee"), ("grace_hopper.bmp", "military uniform")])
def test_coral_other_reference_images(coral, image, label):
    assert coral.predict(CORAL_DIR / image).defect_type == label


def test_array_and_pil_inputs_match_the_path(coral):
    path = CORAL_DIR / "cat.bmp"
    full = load_image(path)  # decoded at full size; resized by the runtime
    a, b = coral.predict_array(full), coral.predict(Image.open(path))
    c = coral.predict(path)
    assert a.top == b.top == c.top and a.path is None and c.path == str(path)


def test_an_opencv_bgr_frame_predicts_like_its_rgb_conversion(coral):
    full = np.asarray(Image.open(CORAL_DIR / "cat.bmp").convert("RGB").resize((1280, 720)))
    bgr = np.ascontiguousarray(full[..., ::-1])
    a, b = coral.predict_array(bgr, bgr=True), coral.predict_array(full)
    assert a.top == b.top and a.defect_type == "Egyptian cat"
    assert coral.predict_array(bgr).top != a.top  # without bgr=True the channels are wrong
    with pytest.raises(ImageError, match="bgr=True is for an OpenCV frame"):
        coral.predict_array(Image.fromarray(full), bgr=True)


def test_prepare_is_exactly_the_shared_preprocessing(coral, tmp_path):
    for name in ("cat.bmp", "grace_hopper.bmp"):
        x = coral.prepare(CORAL_DIR / name)
        assert x.shape == (1, 224, 224, 3) and x.dtype == np.uint8
        assert np.array_equal(x[0], load_image(CORAL_DIR / name, (224, 224)))
    # a JPEG goes through draft() in both paths
    jpg = tmp_path / "big.jpg"
    Image.open(CORAL_DIR / "grace_hopper.bmp").resize((1024, 1200)).save(jpg, quality=90)
    assert np.array_equal(coral.prepare(jpg)[0], load_image(jpg, 224))


def test_prepare_matches_the_trainers_load_batch(coral, tmp_path):
    import trainer.data.dataset as dataset
    jpg = tmp_path / "part.jpg"
    Image.open(CORAL_DIR / "sunflower.bmp").resize((900, 700)).save(jpg, quality=85)
    for path in (CORAL_DIR / "sunflower.bmp", jpg):
        batch = dataset.load_batch([path], coral.input_size)
        assert np.array_equal(coral.prepare(path)[0], batch[0].astype(np.uint8))


def test_bad_images_raise_one_line_image_errors(coral, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for p, why in ((bad, "not an image"), (empty, "empty file")):
        with pytest.raises(ImageError, match=why) as e:
            coral.predict(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ImageError, match="RGB uint8"):
        coral.predict_array(np.zeros((10, 10), np.float32))


def test_odd_image_modes_are_accepted(coral, tmp_path):
    base = Image.open(CORAL_DIR / "cat.bmp")
    base.convert("L").save(tmp_path / "gray.png")
    base.convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257)).save(tmp_path / "deep.png")
    for name in ("gray.png", "rgba.png", "deep.png"):
        assert coral.predict(tmp_path / name).top  # decodes and runs


def test_labels_file_without_background_line_is_aligned(tmp_path):
    lines = LABELS.read_text().splitlines()[1:]
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")
    m = EdgeModel(CPU, labels=tmp_path / "labels.txt", threads=1)
    assert m.labels[0] == "background" and m.predict(CORAL_DIR / "cat.bmp").defect_type == "Egyptian cat"


def test_labels_good_gives_a_verdict(tmp_path):
    labels = LABELS.read_text().splitlines()
    labels[286] = "good"  # line 286 is "Egyptian cat"
    m = EdgeModel(CPU, labels=labels, threads=1)
    assert m.predict(CORAL_DIR / "cat.bmp").verdict == "good"
    assert m.predict(CORAL_DIR / "bird.bmp").verdict == "defective"


def test_numbered_labels_file(tmp_path):
    (tmp_path / "l.txt").write_text("0 good\n1: crack\n2 hole\n")
    assert read_labels(tmp_path / "l.txt") == ["good", "crack", "hole"]


def test_plain_model_without_labels_is_a_clear_error():
    with pytest.raises(ModelError, match="--labels FILE"):
        EdgeModel(CPU)


def test_wrong_number_of_labels_is_a_clear_error(tmp_path):
    (tmp_path / "l.txt").write_text("good\ncrack\n")
    with pytest.raises(ModelError, match="2 labels but the model has 1001 outputs"):
        EdgeModel(CPU, labels=tmp_path / "l.txt")


def test_non_tflite_and_missing_models(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelError, match="not a TFLite model"):
        EdgeModel(tmp_path / "m.tflite", labels=LABELS)
    with pytest.raises(ModelError, match="not found"):
        EdgeModel(tmp_path / "nope.tflite", labels=LABELS)


def _tagged(tmp_path, **meta):
    base = {"format": "edgeinspect", "schema_version": 1, "task": "classifier", "labels": ["good", "bad"],
            "input": {"height": 224, "width": 224, "channels": 3, "dtype": "uint8", "semantics": "raw_pixels",
                      "scale": 1.0, "zero_point": 0},
            "outputs": {"score": 0, "types": 1}, "threshold": 0.5}
    base.update(meta)
    out = tmp_path / "tagged.tflite"
    out.write_bytes(with_metadata(CPU.read_bytes(), base))
    return out


def test_metadata_input_size_mismatch_is_a_clear_error(tmp_path):
    path = _tagged(tmp_path, input={"height": 96, "width": 96, "dtype": "uint8", "semantics": "raw_pixels"})
    with pytest.raises(ModelError, match="metadata says input 96x96 but the model takes 224x224"):
        EdgeModel(path)


def test_metadata_outputs_mismatch_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="metadata output 'types' -> 1 but the model has 1 outputs"):
        EdgeModel(_tagged(tmp_path))


def test_metadata_input_dtype_mismatch_is_a_clear_error(tmp_path):
    path = _tagged(tmp_path, input={"height": 224, "width": 224, "dtype": "float32"})
    with pytest.raises(ModelError, match="input dtype float32"):
        EdgeModel(path)


def test_quantized_raw_pixel_input_uses_scale_and_zero_point(tmp_path):
    # Coral's input is uint8 with scale 1/128, zp 128; with raw_pixels metadata the runtime must quantize
    # the pixels instead of feeding them as-is (q = round(p / scale + zp), clipped).
    path = _tagged(tmp_path, task="classifier", outputs={"score": 0, "types": 0})
    with pytest.raises(ModelError):  # one 1001-wide output cannot be the score: still rejected
        EdgeModel(path)
    m = EdgeModel.__new__(EdgeModel)
    m._in_mode, m.input_quant, m.input_dtype = "quantize", (0.5, 3), np.dtype(np.int8)
    m._q_lo, m._q_hi = -128, 127
    px = np.array([[[0, 1, 200]]], np.uint8)
    assert m.to_tensor(px).tolist() == [[[[3, 5, 127]]]]


def test_edgetpu_model_through_edgemodel_falls_back_to_cpu_twin(tmp_path):
    shutil.copy(TPU, tmp_path / TPU.name)
    shutil.copy(CPU, tmp_path / CPU.name)
    with pytest.warns(UserWarning, match="CPU int8 twin"):
        m = EdgeModel(tmp_path / TPU.name, labels=LABELS, threads=1)
    assert m.path.name == CPU.name and m.requested_path.name == TPU.name and not m.on_edgetpu
    assert m.predict(CORAL_DIR / "cat.bmp").defect_type == "Egyptian cat"
    assert json.dumps(m.describe())
