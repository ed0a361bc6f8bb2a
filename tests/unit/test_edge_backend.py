"""Interpreter backend selection, forced backends, the all-fail message, and the Edge TPU paths.

Uses only the real Coral CPU/Edge TPU models (no TensorFlow); backends are
hidden or replaced through sys.modules, the way a Pi without them looks.
"""
import shutil
import sys
import types

import numpy as np
import pytest

from edge import backend as B
from edge.errors import EdgeInspectError
from edge.metadata import is_edgetpu_model
from tests.fixtures.common import CORAL_DIR

CPU = CORAL_DIR / "mobilenet_v2_1.0_224_quant.tflite"
TPU = CORAL_DIR / "mobilenet_v2_1.0_224_quant_edgetpu.tflite"


def _hide(monkeypatch, *modules):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # makes `import m` raise ImportError


def _fake_tflite_runtime(monkeypatch, works):
    """A tflite_runtime that imports fine; with works=False it fails like a numpy-1 wheel under numpy 2."""
    from ai_edge_litert.interpreter import Interpreter as Real

    class Interpreter(Real):
        def __init__(self, *a, **k):
            if not works:
                raise AttributeError("_ARRAY_API not found")
            super().__init__(*a, **k)

    pkg = types.ModuleType("tflite_runtime")
    mod = types.ModuleType("tflite_runtime.interpreter")
    mod.Interpreter, mod.load_delegate = Interpreter, lambda *a, **k: None
    pkg.interpreter = mod
    monkeypatch.setitem(sys.modules, "tflite_runtime", pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", mod)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(B.ENV_VAR, raising=False)


def test_auto_prefers_litert_and_allocates_with_requested_threads():
    loaded = B.load_interpreter(CPU, threads=1)
    assert loaded.backend == "litert" and loaded.threads == 1 and not loaded.edgetpu
    assert tuple(loaded.interpreter.get_input_details()[0]["shape"]) == (1, 224, 224, 3)
    assert B.resolve_threads(None) == (__import__("os").cpu_count() or 1)


def test_auto_falls_through_to_next_backend_when_litert_is_missing(monkeypatch):
    _fake_tflite_runtime(monkeypatch, works=True)
    _hide(monkeypatch, "ai_edge_litert.interpreter")
    loaded = B.load_interpreter(CPU, threads=1)
    assert loaded.backend == "tflite-runtime"
    assert loaded.attempts and loaded.attempts[0].startswith("litert: import failed")


def test_all_backends_failing_lists_every_attempt(monkeypatch):
    _fake_tflite_runtime(monkeypatch, works=False)  # imports, then fails when the interpreter is built
    _hide(monkeypatch, "ai_edge_litert.interpreter", "tensorflow")
    with pytest.raises(B.BackendError) as e:
        B.load_interpreter(CPU, threads=1)
    msg = str(e.value)
    assert "\n" not in msg
    assert "litert: import failed" in msg
    assert "tflite-runtime: interpreter failed (AttributeError: _ARRAY_API not found)" in msg
    assert "tensorflow: import failed" in msg
    assert "pip install ai-edge-litert" in msg


def test_forced_backend_by_argument_and_env(monkeypatch):
    _fake_tflite_runtime(monkeypatch, works=True)
    assert B.load_interpreter(CPU, backend="tflite-runtime", threads=1).backend == "tflite-runtime"
    monkeypatch.setenv(B.ENV_VAR, "tflite_runtime")
    assert B.load_interpreter(CPU, threads=1).backend == "tflite-runtime"
    # an explicit argument beats the environment
    assert B.load_interpreter(CPU, backend="litert", threads=1).backend == "litert"


def test_forced_backend_does_not_fall_back(monkeypatch):
    _fake_tflite_runtime(monkeypatch, works=False)
    with pytest.raises(B.BackendError, match=r"tried tflite-runtime: interpreter failed") as e:
        B.load_interpreter(CPU, backend="tflite-runtime")
    assert "litert" not in str(e.value).split("tried", 1)[1].split("Fix")[0]


def test_unknown_backend_name_is_a_clear_error():
    with pytest.raises(B.BackendError, match="choose one of auto, litert, tflite-runtime, tensorflow"):
        B.load_interpreter(CPU, backend="onnx")


def test_backend_info_names_auto_choice_without_importing_tensorflow():
    info = B.backend_info()
    assert info["name"] == "litert" and info["module"] == "ai_edge_litert.interpreter"
    assert info["version"] == __import__("ai_edge_litert").__version__
    assert {b["name"] for b in B.installed_backends()} == set(B.CHOICES)  # openvino listed, never auto
    assert "openvino" not in B.BACKENDS


def test_edgetpu_model_detected_and_delegate_requested_with_device(monkeypatch, tmp_path):
    assert is_edgetpu_model(TPU) and not is_edgetpu_model(CPU)
    calls = []

    def fake_load_delegate(library, options=None):
        calls.append((library, options))
        raise ValueError("Failed to load delegate from libedgetpu.so.1")

    monkeypatch.setattr("ctypes.CDLL", lambda name, *a, **k: object())  # pretend the library exists
    monkeypatch.setattr("ai_edge_litert.interpreter.load_delegate", fake_load_delegate)
    shutil.copy(TPU, tmp_path / TPU.name)
    with pytest.raises(B.EdgeTPUError):
        B.load_interpreter(tmp_path / TPU.name, device="usb:0")
    assert calls == [(B.EDGETPU_LIBRARY, {"device": "usb:0"})]
    assert B.edgetpu_delegate_options(None) == {}


def test_edgetpu_model_falls_back_to_cpu_twin_with_warning(tmp_path):
    shutil.copy(TPU, tmp_path / TPU.name)
    shutil.copy(CPU, tmp_path / CPU.name)
    with pytest.warns(B.EdgeTPUFallbackWarning, match="libedgetpu1-std"):
        loaded = B.load_interpreter(tmp_path / TPU.name, threads=1)
    assert loaded.model_path == tmp_path / CPU.name and not loaded.edgetpu
    assert loaded.notes and "CPU int8 twin" in loaded.notes[0]


def test_edgetpu_model_without_twin_fails_with_install_hint(tmp_path):
    shutil.copy(TPU, tmp_path / TPU.name)
    with pytest.raises(B.EdgeTPUError) as e:
        B.load_interpreter(tmp_path / TPU.name)
    msg = str(e.value)
    assert isinstance(e.value, EdgeInspectError) and "\n" not in msg
    assert "libedgetpu1-std" in msg and "Coral" in msg and "Edge TPU" in msg and TPU.name in msg


def test_cpu_twin_naming(tmp_path):
    (tmp_path / "model_int8.tflite").write_bytes(b"x")
    assert B.cpu_twin(tmp_path / "model_int8_edgetpu.tflite") == tmp_path / "model_int8.tflite"
    assert B.cpu_twin(tmp_path / "model_int8.tflite") is None
    assert B.cpu_twin(tmp_path / "other_edgetpu.tflite") is None
