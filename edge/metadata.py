"""edgeinspect metadata inside the .tflite file itself.

The exporter stores one JSON document in the TFLite flatbuffer's ``metadata``
table under the name :data:`METADATA_NAME`. Reading needs only ``struct``
(no TensorFlow, no tflite-support, no flatbuffers package), so a device with
just ``tflite-runtime`` can read it. Writing re-packs the model with the
generated TFLite schema shipped by ai-edge-litert or TensorFlow (export time).

Schema (``schema_version`` 1), written by ``export``::

    {
      "format": "edgeinspect", "schema_version": 1,
      "task": "classifier" | "anomaly",
      "labels": ["good", "crack", ...],        # defect-type head; labels[0] == "good"
                                               # (anomaly: ["good", "defective"], or with a type
                                               #  head ["good", <types>..., "unknown"])
      "input": {"height": 224, "width": 224, "channels": 3, "dtype": "uint8",
                "semantics": "raw_pixels", "scale": 1.0, "zero_point": 0},
      "preprocess": {...edge.preprocess.describe()...},
      "outputs": {"score": 0, "types": 1}      # classifier: output indices
              or {"score": 0, "map": 1}        # anomaly (map is (1, h, w))
              or {"score": 0, "map": 1, "types": 2},  # anomaly with a defect-type head ((1, T),
                                               # T == len(labels), column j is labels[j])
      "output_quantization": {"score": [scale, zero_point], ...},
      "threshold": 0.5, "threshold_policy": "recall@0.99",
      "variant": "int8", "model_version": "...", "manifest_sha256": "...",
      "run": "exp3", "created": "2026-11-25T18:00:00Z", "edgeinspect_version": "0.1.0"
    }
"""
from __future__ import annotations

import json
import os
import struct

from edge.errors import ModelError

METADATA_NAME = "edgeinspect"
SCHEMA_VERSION = 1
TFLITE_IDENTIFIER = b"TFL3"
EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"


def _u32(buf, pos):
    return struct.unpack_from("<I", buf, pos)[0]


class _Table:
    """Minimal read-only flatbuffer table accessor."""

    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, vt)[0]
        self.vt = vt

    def _field(self, index):
        off = 4 + 2 * index
        if off >= self.vt_len:
            return None
        rel = struct.unpack_from("<H", self.buf, self.vt + off)[0]
        return self.pos + rel if rel else None

    def scalar(self, index, fmt, default=0):
        p = self._field(index)
        return default if p is None else struct.unpack_from("<" + fmt, self.buf, p)[0]

    def _indirect(self, index):
        p = self._field(index)
        return None if p is None else p + _u32(self.buf, p)

    def string(self, index):
        p = self._indirect(index)
        if p is None:
            return None
        n = _u32(self.buf, p)
        return bytes(self.buf[p + 4 : p + 4 + n]).decode("utf-8", "replace")

    def bytes_vector(self, index):
        p = self._indirect(index)
        if p is None:
            return b""
        n = _u32(self.buf, p)
        return bytes(self.buf[p + 4 : p + 4 + n])

    def table(self, index):
        p = self._indirect(index)
        return None if p is None else _Table(self.buf, p)

    def vector(self, index, fmt="i"):
        """A vector of scalars (``fmt`` one struct code, e.g. "i" for int32)."""
        p = self._indirect(index)
        if p is None:
            return []
        n = _u32(self.buf, p)
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, p + 4))

    def tables(self, index):
        p = self._indirect(index)
        if p is None:
            return []
        n = _u32(self.buf, p)
        out = []
        for i in range(n):
            e = p + 4 + 4 * i
            out.append(_Table(self.buf, e + _u32(self.buf, e)))
        return out


def read_model_bytes(path) -> bytes:
    """The whole model file, read once (a one-line ModelError when it cannot be read)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise ModelError(f"{path}: cannot read model (Permission denied); check the file's permissions") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder; pass the .tflite file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model ({exc.strerror or exc}); check the path") from None


def _read_bytes(model, name=None):
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), name or "<bytes>"
    return read_model_bytes(model), name or os.fspath(model)


def check_tflite(buf, name="<model>"):
    if len(buf) < 8 or buf[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(
            f"{name}: not a TFLite model (no 'TFL3' identifier); pass a .tflite file written by 'edgeinspect export'"
        )


def read_all_metadata(model, name=None) -> dict:
    """All entries of the model's metadata table: name -> raw bytes (``name`` labels errors for bytes)."""
    buf, name = _read_bytes(model, name)
    check_tflite(buf, name)
    try:
        root = _Table(buf, _u32(buf, 0))
        buffers = root.tables(4)
        out = {}
        for entry in root.tables(6):
            key = entry.string(0)
            idx = entry.scalar(1, "I")
            if key is None or idx >= len(buffers):
                continue
            b = buffers[idx]
            data = b.bytes_vector(0)
            if not data:
                offset, size = b.scalar(1, "Q"), b.scalar(2, "Q")
                if offset > 1 and size:
                    data = bytes(buf[offset : offset + size])
            out[key] = data
        return out
    except (struct.error, IndexError) as exc:
        raise ModelError(f"{name}: damaged TFLite flatbuffer ({exc}); re-export the model") from None


def read_metadata(model, name=None):
    """The edgeinspect metadata dict, or None if the model has none (e.g. a plain TFLite model)."""
    raw = read_all_metadata(model, name).get(METADATA_NAME)
    if raw is None:
        return None
    try:
        meta = json.loads(raw.rstrip(b"\x00").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        name = name or (model if isinstance(model, (str, os.PathLike)) else "<model>")
        raise ModelError(f"{name}: edgeinspect metadata is not valid JSON ({exc}); re-export the model") from None
    if meta.get("schema_version", 0) > SCHEMA_VERSION:
        raise ModelError(
            f"model metadata schema {meta.get('schema_version')} is newer than this runtime understands "
            f"({SCHEMA_VERSION}); upgrade edgeinspect on the device"
        )
    return meta


def is_edgetpu_model(model) -> bool:
    """True when the file holds an Edge TPU-compiled op (needs libedgetpu's delegate)."""
    buf, _ = _read_bytes(model)
    return EDGETPU_CUSTOM_OP in buf


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema  # noqa: F401
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema  # fallback (export machine)
        except ImportError:  # pragma: no cover
            raise ModelError("writing metadata needs ai-edge-litert or tensorflow: pip install 'edgeinspect[train]'")
    return schema


def with_metadata(model_bytes: bytes, meta: dict, name: str = METADATA_NAME) -> bytes:
    """Return a copy of the TFLite model with ``meta`` (JSON) stored under ``name``.

    Re-writing an existing entry replaces it, so exporting twice never stacks copies.
    """
    import flatbuffers

    check_tflite(model_bytes)
    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model_bytes), 0))
    payload = json.dumps(meta, sort_keys=True).encode("utf-8")
    model.buffers = model.buffers or []
    model.metadata = model.metadata or []
    buf = schema.BufferT()
    import numpy as np

    buf.data = np.frombuffer(payload, dtype=np.uint8)
    for m in model.metadata:
        key = m.name.decode() if isinstance(m.name, bytes) else m.name
        if key == name:
            model.buffers[m.buffer] = buf
            break
    else:
        model.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())
