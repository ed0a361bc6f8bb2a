"""THE table of model variants: one row per format, read by the export CLI, the converter, bench and report.

Look a row up by name (``VARIANT["int8"]``), never by position: adding a format (int16x8, say) is one
row here plus its converter settings, and the CLI flag, file name, bench title and report order follow.
No TensorFlow here: bench (and the TF-free watch soak through it) import this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from export.errors import ExportError


@dataclass(frozen=True)
class Variant:
    name: str
    file: str                    # file name: RUN/model.keras for the float reference, else under RUN/export/
    title: str                   # how tables and plots name it
    source: str                  # "keras" (the trained model), "convert" (TFLiteConverter) or "compile" (edgetpu_compiler)
    flag: Optional[str] = None   # `edgeinspect export` flag
    help: str = ""
    optimize: bool = False       # converter: Optimize.DEFAULT
    float16: bool = False        # converter: float16 weights
    full_integer: bool = False   # converter: calibrated int8 ops, uint8 input and outputs
    # A converted file must hold at least this many bytes per Keras parameter (BatchNorm folds away, so < 1x).
    min_bytes_per_param: Optional[float] = None
    device_rank: int = 99        # which variant a device would run first (report's sample grid shows it)

    @property
    def failed_file(self) -> str:
        """Where a variant that failed parity is kept aside, so the deployed file is never a bad one."""
        return self.file.replace(".tflite", ".failed.tflite")


# Order is the tables' order: float reference first, then smaller/faster files.
ROWS = (
    Variant("keras", "model.keras", "Keras float", "keras", device_rank=6),
    Variant("fp32", "model_fp32.tflite", "TFLite float32", "convert", "--fp32", "float32 (reference).",
            min_bytes_per_param=2.0, device_rank=5),
    Variant("fp16", "model_fp16.tflite", "TFLite float16", "convert", "--fp16", "float16 weights.",
            optimize=True, float16=True, min_bytes_per_param=1.0, device_rank=4),
    Variant("dynamic", "model_dynamic.tflite", "TFLite dynamic-range", "convert", "--dynamic",
            "int8 weights, float activations.", optimize=True, min_bytes_per_param=0.5, device_rank=3),
    Variant("int8", "model_int8.tflite", "TFLite int8", "convert", "--int8",
            "full integer, uint8 raw-pixel input, calibrated.", optimize=True, full_integer=True,
            min_bytes_per_param=0.5, device_rank=1),
    Variant("edgetpu", "model_int8_edgetpu.tflite", "Edge TPU int8", "compile", "--edgetpu",
            "int8 compiled by edgetpu_compiler (x86-64 Linux only).", device_rank=2),
)
VARIANT = {v.name: v for v in ROWS}
BENCHED = tuple(v.name for v in ROWS)                                  # what bench can time
EXPORTED = tuple(v.name for v in ROWS if v.source != "keras")          # what export can write
CONVERTED = tuple(v.name for v in ROWS if v.source == "convert")       # what TFLiteConverter makes (the default)
COMPILER_INPUT = "int8"                                                # what edgetpu_compiler is fed


def get(name: str) -> Variant:
    """The row called ``name``; a one-line error naming the choices otherwise."""
    try:
        return VARIANT[name]
    except KeyError:
        raise ExportError(f"unknown variant {name!r}; choose from {', '.join(EXPORTED)}") from None


def title(name: str) -> str:
    return VARIANT[name].title if name in VARIANT else name
