"""benchmarks/backends.py: every backend x variant, agreement with LiteRT and e2e ratios on camera frames."""
import types

import numpy as np
import pytest

from benchmarks.backends import backend_rows, format_backends
from edge.imageio import load_image
from tests.fixtures.common import CORAL_DIR

pytest.importorskip("openvino")


def test_a_file_a_backend_cannot_run_gets_a_row_saying_why(tmp_path):
    plain = tmp_path / "model_int8.tflite"  # Coral's file has no edgeinspect metadata: EdgeModel refuses it
    plain.write_bytes((CORAL_DIR / "mobilenet_v2_1.0_224_quant.tflite").read_bytes())
    ts = types.SimpleNamespace(images=[load_image(CORAL_DIR / "cat.bmp", (224, 224))], size=(224, 224))
    rows = backend_rows([("int8", plain), ("keras", tmp_path / "model.keras")], ts, threads=1, repeats=3)
    assert {r["backend"] for r in rows} >= {"litert", "openvino"} and {r["variant"] for r in rows} == {"int8"}
    assert all("no edgeinspect metadata" in r["error"] for r in rows)
    assert "cannot run" in "\n".join(format_backends(rows))


def test_rows_for_a_real_classifier(tiny_classifier_tflite):
    images = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(4)]
    from edge.runtime import EdgeModel

    size = EdgeModel(tiny_classifier_tflite).input_size
    ts = types.SimpleNamespace(images=images, size=size)
    rows = backend_rows([("int8", tiny_classifier_tflite)], ts, threads=1, repeats=3)
    by = {r["backend"]: r for r in rows}
    ov, lite = by["openvino"], by["litert"]
    assert "error" not in ov and ov["agreement_vs_litert"] == 1.0 and ov["max_score_diff_vs_litert"] < 0.05
    assert "agreement_vs_litert" not in lite  # the reference itself
    frame_keys = [f"{size[1]}x{size[0]}", "640x480", "1920x1080", "1920x1080 jpeg"]
    for r in (ov, lite):
        assert list(r["e2e_ms"]) == frame_keys and r["invoke_ms"] > 0
        assert list(r["ratio"]) == frame_keys and min(r["ratio"].values()) > 0
    text = "\n".join(format_backends(rows))
    assert "e2e 1920x1080" in text and "openvino" in text and "fastest invoke: int8" in text
