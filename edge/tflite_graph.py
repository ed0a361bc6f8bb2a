"""The operators, tensors and constant buffers of a ``.tflite`` file, read with ``struct`` only.

Field numbers follow TensorFlow Lite's ``schema.fbs`` (Model, SubGraph, Tensor,
Operator, OperatorCode, Buffer). Only the main subgraph (index 0) is read; the
Edge TPU compiler only partitions that one. The result is plain dicts and
lists, so checks over it (edge/edgetpu_preflight.py) are pure functions.
"""
from __future__ import annotations

import math
import struct

from edge.errors import ModelError
from edge.metadata import _read_bytes, _Table, _u32, check_tflite

# BuiltinOperator codes 0..126 of schema.fbs (tests compare them with the generated schema).
BUILTIN_NAMES = tuple("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP FLOOR
FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC
LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH
SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN
GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM
STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM
CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN
TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN
FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV
REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE
MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG
QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND
SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL
""".split())

# TensorType codes -> numpy-style names (the ones a quantized image model can hold).
DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
          9: "int8", 10: "float64", 15: "uint32", 16: "uint16", 17: "int4"}
DTYPE_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1, "int16": 2, "int8": 1,
               "float64": 8, "uint32": 4, "uint16": 2}

# Options the pre-flight reads: op -> (field, index in the options table, struct code).
_OPTIONS = {
    "CONV_2D": (("fused_activation", 3, "b"), ("dilation_w", 4, "i"), ("dilation_h", 5, "i")),
    "DEPTHWISE_CONV_2D": (("fused_activation", 4, "b"), ("dilation_w", 5, "i"), ("dilation_h", 6, "i")),
    "AVERAGE_POOL_2D": (("fused_activation", 5, "b"),),
    "MAX_POOL_2D": (("fused_activation", 5, "b"),),
    "CONCATENATION": (("axis", 0, "i"), ("fused_activation", 1, "b")),
    "FULLY_CONNECTED": (("fused_activation", 0, "b"), ("weights_format", 1, "b"), ("keep_num_dims", 2, "?")),
    "RESIZE_BILINEAR": (("align_corners", 2, "?"), ("half_pixel_centers", 3, "?")),
    "RESIZE_NEAREST_NEIGHBOR": (("align_corners", 0, "?"), ("half_pixel_centers", 1, "?")),
    "STRIDED_SLICE": (("ellipsis_mask", 2, "i"), ("new_axis_mask", 3, "i")),
    "PACK": (("axis", 1, "i"),),
}
_OPTION_DEFAULTS = {"dilation_w": 1, "dilation_h": 1}


def _op_name(code: _Table):
    builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))  # deprecated int8 code, or the int32 one
    name = BUILTIN_NAMES[builtin] if builtin < len(BUILTIN_NAMES) else f"BUILTIN_{builtin}"
    return name, code.string(1), code.scalar(2, "i", 1)


def _buffer_bytes(buf, b: _Table):
    n = len(b.bytes_vector(0))
    if not n:
        offset, size = b.scalar(1, "Q"), b.scalar(2, "Q")
        n = size if offset > 1 else 0
    return n


def _constant_values(buf, b: _Table, dtype):
    """Values of a small constant int32 tensor (axes, sizes, paddings, strides: <= 16); None otherwise."""
    data = b.bytes_vector(0)
    if dtype != "int32" or not data or len(data) > 64:
        return None
    return list(struct.unpack_from(f"<{len(data) // 4}i", data))


def parse_graph(model) -> dict:
    """``{"tensors", "operators", "inputs", "outputs"}`` of the main subgraph of a .tflite file or bytes."""
    buf, name = _read_bytes(model)
    check_tflite(buf, name)
    try:
        root = _Table(buf, _u32(buf, 0))
        codes = [_op_name(c) for c in root.tables(1)]
        buffers = root.tables(4)
        subgraphs = root.tables(2)
        if not subgraphs:
            raise ModelError(f"{name}: the model has no subgraph; re-export it")
        sg = subgraphs[0]
        tensors = []
        for t in sg.tables(0):
            dtype = DTYPES.get(t.scalar(1, "b"), f"type{t.scalar(1, 'b')}")
            shape = t.vector(0)
            bi = t.scalar(2, "I")
            b = buffers[bi] if 0 < bi < len(buffers) else None
            nbytes = _buffer_bytes(buf, b) if b is not None else 0
            q = t.table(4)
            scales, zeros = (q.vector(2, "f"), q.vector(3, "q")) if q else ([], [])
            tensors.append({
                "name": t.string(3) or "", "shape": shape,
                "quantization": (scales[0] if scales else 0.0, zeros[0] if zeros else 0), "signature": t.vector(7) or shape, "dtype": dtype,
                "constant": nbytes > 0, "bytes": nbytes,
                "values": _constant_values(buf, b, dtype) if nbytes else None,
                "elements": math.prod(shape) if shape else 1,
            })
        operators = []
        for i, op in enumerate(sg.tables(3)):
            opname, custom, version = codes[op.scalar(0, "I")]
            opts = op.table(4)
            options = {}
            for field, idx, fmt in _OPTIONS.get(opname, ()):
                options[field] = opts.scalar(idx, fmt, _OPTION_DEFAULTS.get(field, 0)) if opts else \
                    _OPTION_DEFAULTS.get(field, 0)
            operators.append({
                "index": i, "op": opname if opname != "CUSTOM" else (custom or "CUSTOM"),
                "custom": opname == "CUSTOM", "version": version,
                "inputs": [j for j in op.vector(1) if j >= 0], "outputs": op.vector(2), "options": options,
                "custom_bytes": len(op.bytes_vector(5)) or op.scalar(10, "Q"),
            })
        return {"name": name, "tensors": tensors, "operators": operators, "inputs": sg.vector(1),
                "outputs": sg.vector(2)}
    except (struct.error, IndexError) as exc:
        raise ModelError(f"{name}: damaged TFLite flatbuffer ({exc}); re-export the model") from None
