"""Edge TPU orchestration with a stand-in ``edgetpu_compiler`` (the real one is x86-64 Linux only, not installable here)."""
import os
import shutil

import pytest

from edge.metadata import is_edgetpu_model, read_metadata, with_metadata
from export import edgetpu
from export.errors import CompilerMissing, ExportError

REAL_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1141 ms.

Input model: model_int8.tflite
Input size: 2.96MiB
Output model: model_int8_edgetpu.tflite
Output size: 3.12MiB
On-chip memory used for caching model parameters: 3.01MiB
On-chip memory remaining for caching model parameters: 4.31MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 72
Operation log: model_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 69
Number of operations that will run on CPU: 3

Operator                       Count      Status

ADD                            11         Mapped to Edge TPU
CONV_2D                        35         Mapped to Edge TPU
DEPTHWISE_CONV_2D              17         Mapped to Edge TPU
MEAN                           1          Mapped to Edge TPU
QUANTIZE                       1          Mapped to Edge TPU
FULLY_CONNECTED                2          Mapped to Edge TPU
LOGISTIC                       1          Mapped to Edge TPU
SOFTMAX                        1          Mapped to Edge TPU
FULLY_CONNECTED                1          More than one subgraph is not supported
DEQUANTIZE                     2          Operation is working on an unsupported data type
"""

@pytest.fixture
def int8_model(tmp_path, coral_dir):
    """A real uint8, batch-1 TFLite model standing in for export/model_int8.tflite."""
    d = tmp_path / "run" / "export"
    d.mkdir(parents=True)
    p = d / "model_int8.tflite"
    shutil.copyfile(coral_dir / "mobilenet_v2_1.0_224_quant.tflite", p)
    return p


def test_parse_real_log_counts_and_cpu_ops():
    got = edgetpu.parse_log(REAL_LOG)
    assert got["compiler_version"] == "16.0.384591198"
    assert (got["ops_on_edgetpu"], got["ops_on_cpu"], got["total_ops"], got["edgetpu_subgraphs"]) == (69, 3, 72, 1)
    assert len(got["ops"]) == 10
    assert [(o["op"], o["count"]) for o in got["cpu_ops"]] == [("FULLY_CONNECTED", 1), ("DEQUANTIZE", 2)]
    assert got["cpu_ops"][1]["status"] == "Operation is working on an unsupported data type"
    text = edgetpu.cpu_ops_text(got)
    assert "DEQUANTIZE x2" in text and "More than one subgraph" in text


def test_parse_log_without_count_lines_sums_the_table():
    only_table = REAL_LOG[REAL_LOG.index("Operator"):]
    got = edgetpu.parse_log(only_table)
    assert got["ops_on_edgetpu"] == 69 and got["ops_on_cpu"] == 3


def test_compile_runs_compiler_with_expected_arguments(standin, int8_model):
    out = int8_model.parent / "model_int8_edgetpu.tflite"
    data, parsed = edgetpu.compile_model(int8_model, out)
    argv = (standin / "argv.txt").read_text().splitlines()
    assert argv[:2] == ["-s", "-o"] and argv[3].endswith("model_int8.tflite")
    assert os.path.dirname(argv[2]) == str(int8_model.parent)  # compiled next to the output: same filesystem
    assert data == int8_model.read_bytes()
    assert parsed["ops_on_edgetpu"] == 52 and parsed["ops_on_cpu"] == 0 and parsed["cpu_ops"] == []
    assert not out.exists()  # the caller tags the bytes with metadata, then writes atomically
    assert [p.name for p in int8_model.parent.iterdir()] == ["model_int8.tflite"]  # temp folder cleaned


def test_cpu_fallback_fails_loudly_unless_allowed(standin, int8_model, monkeypatch):
    monkeypatch.setenv("STANDIN_CPU_OPS", "2")
    with pytest.raises(edgetpu.EdgeTPUFallback) as exc:
        edgetpu.compile_model(int8_model, int8_model.parent / "model_int8_edgetpu.tflite")
    msg = str(exc.value)
    assert "2 of 54 ops would run on the CPU" in msg and msg.count("MEAN x2") == 1 and "--allow-cpu-ops" in msg
    data, parsed = edgetpu.compile_model(int8_model, int8_model.parent / "x.tflite", allow_cpu_ops=True)
    assert parsed["ops_on_cpu"] == 2 and parsed["cpu_ops"][0]["op"] == "MEAN"


def test_compiler_error_is_reported(standin, int8_model, monkeypatch):
    monkeypatch.setenv("STANDIN_FAIL", "1")
    with pytest.raises(ExportError, match="edgetpu_compiler failed .*Didn't find op"):
        edgetpu.compile_model(int8_model, int8_model.parent / "model_int8_edgetpu.tflite")


def test_compiler_missing_says_how_to_install(tmp_path, monkeypatch, int8_model):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert edgetpu.find_compiler() is None
    with pytest.raises(CompilerMissing) as exc:
        edgetpu.compile_model(int8_model, tmp_path / "out.tflite")
    assert "not found on PATH" in str(exc.value) and "apt-get install edgetpu-compiler" in str(exc.value)
    monkeypatch.setattr(edgetpu.platform, "machine", lambda: "aarch64")
    assert "x86-64 Linux only" in edgetpu.missing_message()


def test_real_compiled_model_is_detected_and_retagged(coral_dir):
    path = coral_dir / "mobilenet_v2_1.0_224_quant_edgetpu.tflite"
    assert is_edgetpu_model(path)
    assert not is_edgetpu_model(coral_dir / "mobilenet_v2_1.0_224_quant.tflite")
    meta = {"format": "edgeinspect", "schema_version": 1, "variant": "edgetpu", "labels": ["good", "crack"]}
    tagged = with_metadata(path.read_bytes(), meta)
    assert is_edgetpu_model(tagged)  # the custom op survives re-packing
    assert read_metadata(tagged) == meta
    again = with_metadata(tagged, {**meta, "variant": "edgetpu2"})
    assert read_metadata(again)["variant"] == "edgetpu2" and len(again) - len(tagged) < 64  # replaced, not stacked
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=tagged).get_input_details()
    assert tuple(details[0]["shape"]) == (1, 224, 224, 3)
