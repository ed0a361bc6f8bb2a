"""The inference model on the device: load once, then image -> verdict.

:class:`EdgeModel` wraps one allocated TFLite interpreter. It reads the
edgeinspect metadata embedded in the model (task, labels, threshold, which
output is which), checks it against the interpreter's tensors at load time
(so a mismatch is one clear error, not a wrong answer later), and turns an
image into exactly the tensor the trainer fed the model
(:func:`edge.preprocess.to_model_input`).

Plain TFLite classifiers without edgeinspect metadata (e.g. Coral's ImageNet
models) work with ``labels=``: raw uint8 pixels in (the pycoral convention),
dequantized top-k out.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from edge.errors import ImageError, ModelError
from edge.prediction import Prediction, check_threshold, defect_type, read_labels  # noqa: F401 - re-export

PLAIN = "plain"  # a classifier without edgeinspect metadata


def _quant(detail):
    scale, zp = detail.get("quantization", (0.0, 0))
    return float(scale), int(zp)


class EdgeModel:
    """One TFLite model ready to inspect images. Thread-safe (calls are serialised)."""

    def __init__(self, path, backend=None, threads=None, device=None, labels=None, threshold=None):
        from edge.backend import load_interpreter
        from edge.metadata import read_metadata, read_model_bytes

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found; pass the .tflite written by 'edgeinspect export'")
        self.requested_path = path
        content = read_model_bytes(path)  # read once: metadata, interpreter and hash all see these bytes
        meta = read_metadata(content, str(path))  # also rejects non-TFLite files with a one-line error
        loaded = load_interpreter(path, backend=backend, threads=threads, device=device, content=content)
        if loaded.model_path != path:  # Edge TPU -> CPU twin: its metadata is the truth now
            meta = read_metadata(loaded.content, str(loaded.model_path))
        self.path = loaded.model_path
        self.loaded = loaded
        self.content = loaded.content  # the bytes the interpreter runs (hash these to name the model)
        self.backend = loaded.backend
        self.threads = loaded.threads
        self.on_edgetpu = loaded.edgetpu
        self.notes = list(loaded.notes)
        self.backend_choice = loaded.choice  # the --backend fastest timings, for the log
        self.meta = meta or {}
        self._it = loaded.interpreter
        self._lock = threading.Lock()
        user_labels = read_labels(labels)
        if meta is None and user_labels is None:
            raise ModelError(
                f"{path}: no edgeinspect metadata in this model; export it with 'edgeinspect export', "
                "or pass --labels FILE to use it as a plain classifier"
            )
        self._setup_input()
        self._setup_outputs(user_labels)
        if threshold is not None:
            self.threshold = check_threshold(threshold, "--threshold")
        else:
            self.threshold = check_threshold(self.meta.get("threshold", 0.5), f"{self.path} metadata")

    # -- set-up -------------------------------------------------------------------------------------
    def _setup_input(self):
        inputs = self._it.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: expected one image input, the model has {len(inputs)}")
        d = inputs[0]
        shape = tuple(int(s) for s in d["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(f"{self.path}: expected an input of shape (1, H, W, 3), the model has {shape}")
        self._in_index = d["index"]
        self.input_size = (shape[1], shape[2])
        self.input_dtype = np.dtype(d["dtype"])
        self.input_quant = _quant(d)
        m = self.meta.get("input")
        if m:
            mh, mw = int(m.get("height", 0)), int(m.get("width", 0))
            if (mh, mw) != self.input_size:
                raise ModelError(
                    f"{self.path}: metadata says input {mh}x{mw} but the model takes "
                    f"{self.input_size[0]}x{self.input_size[1]}; the metadata belongs to another model, re-export it"
                )
            if m.get("dtype") and np.dtype(m["dtype"]) != self.input_dtype:
                raise ModelError(f"{self.path}: metadata says input dtype {m['dtype']} but the model takes "
                                 f"{self.input_dtype.name}; re-export the model")
            if m.get("semantics", "raw_pixels") != "raw_pixels":
                raise ModelError(f"{self.path}: input semantics {m.get('semantics')!r} not supported "
                                 "(this runtime feeds raw pixels); re-export the model")
        scale, zp = self.input_quant
        kind = self.input_dtype.kind
        if self.input_dtype == np.float32:
            self._in_mode = "float"            # the graph scales raw pixels itself
        elif self.input_dtype == np.uint8 and (not m or (scale in (0.0, 1.0) and zp == 0)):
            self._in_mode = "raw"              # fast path; also the pycoral convention for plain models
        elif kind in "iu" and m and scale > 0:
            self._in_mode = "quantize"         # q = round(pixel / scale + zero_point)
        elif self.input_dtype == np.int8:
            self._in_mode = "shift"            # plain int8 model: pixel - 128
        else:
            raise ModelError(f"{self.path}: unsupported input dtype {self.input_dtype.name}")

    def _setup_outputs(self, user_labels):
        outs = self._it.get_output_details()
        self._out = [(d["index"], tuple(int(s) for s in d["shape"]), _quant(d)) for d in outs]
        sizes = [int(np.prod(s[1:])) if len(s) > 1 else int(np.prod(s)) for _, s, _ in self._out]
        task = self.meta.get("task") if self.meta else PLAIN
        self.task = task
        self._types_i = self._map_i = None
        if task == PLAIN:
            if len(outs) != 1:
                raise ModelError(f"{self.path}: a plain classifier needs one output, the model has {len(outs)}")
            n = sizes[0]
            labels = list(user_labels)
            if len(labels) == n - 1:  # ImageNet-style files without the "background" line
                labels = ["background"] + labels
            if len(labels) != n:
                raise ModelError(f"{self.path}: the labels file has {len(user_labels)} labels but the model "
                                 f"has {n} outputs; pass the labels file that belongs to the model")
            self.labels = labels
            self._plain_good = labels.index("good") if "good" in labels else None
            return
        if task not in ("classifier", "anomaly"):
            raise ModelError(f"{self.path}: unknown task {task!r} in metadata; upgrade edgeinspect on the device")
        idx = self.meta.get("outputs") or {}
        need = ("score", "types") if task == "classifier" else ("score", "map")
        for key in need:
            i = idx.get(key)
            if not isinstance(i, int) or not 0 <= i < len(outs):
                raise ModelError(f"{self.path}: metadata output {key!r} -> {i!r} but the model has {len(outs)} "
                                 "outputs; re-export the model")
        self._score_i = idx["score"]
        if sizes[self._score_i] != 1:
            raise ModelError(f"{self.path}: metadata says output {self._score_i} is the score, but it has "
                             f"shape {self._out[self._score_i][1]}; re-export the model")
        labels = list(user_labels) if user_labels is not None else list(self.meta.get("labels") or [])
        # The defect-type head: the classifier's always, an anomaly model's when it has one (issue 13).
        self._types_i = idx.get("types") if task == "anomaly" else idx["types"]
        self._map_i = idx["map"] if task == "anomaly" else None
        if self._types_i is not None:
            if not isinstance(self._types_i, int) or not 0 <= self._types_i < len(outs) \
                    or self._types_i in (self._score_i, self._map_i):
                raise ModelError(f"{self.path}: metadata output 'types' -> {self._types_i!r} does not name a "
                                 f"separate one of the model's {len(outs)} outputs; re-export the model")
            n = sizes[self._types_i]
            if len(labels) != n:
                raise ModelError(f"{self.path}: {len(labels)} labels for a type head of {n} classes; "
                                 "re-export the model (or fix --labels)")
        if self._map_i is not None:
            shape = self._out[self._map_i][1]
            if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 1):
                raise ModelError(f"{self.path}: metadata says output {self._map_i} is the anomaly map, but it "
                                 f"has shape {shape}; re-export the model")
        # what _run reads after each invoke, in _postprocess's order: score, then the rest
        self._reads = [i for i in (self._score_i, self._types_i, self._map_i) if i is not None]
        self.labels = labels

    @property
    def has_types(self) -> bool:
        """True when the model names a defect type: a classifier, or an anomaly model with a type head."""
        return self._types_i is not None

    # -- inference ----------------------------------------------------------------------------------
    def pixels(self, image, bgr=False) -> np.ndarray:
        """Path / RGB uint8 array / PIL image -> (h, w, 3) uint8 RGB pixels at the model's input size.

        ``bgr=True``: the array is an OpenCV BGR frame (swapped after the resize, the same pixels)."""
        from edge.preprocess import to_model_input

        from edge.imageio import check_not_tiny

        if bgr and not isinstance(image, np.ndarray):
            raise ImageError(repr(type(image).__name__), "bgr=True is for an OpenCV frame",
                             "pass the BGR HxWx3 uint8 array, or drop bgr=True")
        if isinstance(image, (str, os.PathLike)):
            from edge.imageio import load_image

            return load_image(image, self.input_size, refuse_tiny=True)
        if isinstance(image, np.ndarray):
            if image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] == 3:  # else: the error below
                check_not_tiny("<array>", image.shape[1], image.shape[0], self.input_size)
            try:
                return to_model_input(image, self.input_size, bgr=bgr)
            except ValueError as exc:
                raise ImageError("<array>", str(exc), "pass an RGB uint8 HxWx3 array (convert BGR/gray first)") from None
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            check_not_tiny("<image>", image.size[0], image.size[1], self.input_size)
            if image.mode != "RGB":
                from edge.imageio import _to_rgb  # same conversion rules as files

                image = _to_rgb(image)
            return to_model_input(image, self.input_size)
        raise ImageError(repr(type(image).__name__), "not an image", "pass a path, an RGB uint8 array or a PIL image")

    def to_tensor(self, px: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 pixels -> the exact (1, h, w, 3) input tensor."""
        mode = self._in_mode
        if mode == "raw":
            return px[None]
        if mode == "float":
            return px[None].astype(np.float32)
        if mode == "shift":
            return (px[None].astype(np.int16) - 128).astype(np.int8)
        from edge.preprocess import quantize_pixels

        return quantize_pixels(px[None], self.input_dtype, self.input_quant)

    def prepare(self, image, bgr=False) -> np.ndarray:
        """Image -> the exact input tensor, shape (1, h, w, 3), in the model's dtype."""
        return self.to_tensor(self.pixels(image, bgr=bgr))

    def _output(self, i):
        index, _, (scale, zp) = self._out[i]
        raw = self._it.get_tensor(index)[0]
        if scale > 0 and raw.dtype.kind in "iu":
            return (raw.astype(np.float32) - np.float32(zp)) * np.float32(scale)
        return raw.astype(np.float32, copy=False)

    def _run(self, x):
        """-> (outputs, invoke ms): set_tensor + invoke timed apart from reading the outputs."""
        with self._lock:
            t = time.perf_counter()
            self._it.set_tensor(self._in_index, x)
            self._it.invoke()
            invoke_ms = (time.perf_counter() - t) * 1e3
            if self.task == PLAIN:
                return (self._output(0),), invoke_ms
            return tuple(self._output(i) for i in self._reads), invoke_ms

    def warmup(self):
        """One invoke on a blank frame: XNNPACK packs weights on the first call (watch calls this)."""
        self._run(self.to_tensor(np.zeros(self.input_size + (3,), np.uint8)))

    def invoke_raw(self, x):
        """Bare set_tensor + invoke (benchmarks compare the runtime against this)."""
        self._it.set_tensor(self._in_index, x)
        self._it.invoke()

    def _finish(self, x, path, t0, top_k):
        """Input tensor ready (preprocessing began at ``t0``) -> Prediction with its stage times."""
        t1 = time.perf_counter()
        outs, invoke_ms = self._run(x)
        pred = self._postprocess(outs, path, t0, top_k)
        pre = (t1 - t0) * 1e3
        pred.stages_ms = {"preprocess": pre, "invoke": invoke_ms,
                          "postprocess": max(pred.latency_ms - pre - invoke_ms, 0.0)}
        return pred

    def _postprocess(self, outs, path, t0, top_k):
        if self.task == PLAIN:
            probs = outs[0].reshape(-1)
            k = max(1, min(int(top_k), probs.size))
            order = np.argpartition(-probs, k - 1)[:k]
            order = order[np.argsort(-probs[order], kind="stable")]
            top = [(self.labels[i], float(probs[i])) for i in order]
            if self._plain_good is not None:
                score = 1.0 - float(probs[self._plain_good])
                verdict = "good" if order[0] == self._plain_good else "defective"
            else:
                score, verdict = top[0][1], "-"
            return Prediction(path, verdict, score, top[0][0], top[0][1],
                              (time.perf_counter() - t0) * 1e3, None, top)
        score = float(outs[0].reshape(-1)[0])
        verdict = "defective" if score >= self.threshold else "good"
        rest = list(outs[1:])
        label = prob = amap = None
        if self._types_i is not None:
            probs = rest.pop(0).reshape(-1)
            if self.task == "classifier" or verdict == "defective":
                label, prob = defect_type(self.labels, probs, verdict == "defective")
            else:
                # An anomaly model's type head is matched against defect prototypes only: on a good part
                # its argmax means nothing, so the part is "good" with no type probability.
                label = "good"
        if self._map_i is not None:
            amap = rest.pop(0)
            if amap.ndim == 3:
                amap = amap[..., 0]
        return Prediction(path, verdict, score, label, prob, (time.perf_counter() - t0) * 1e3, amap)

    def predict(self, image, top_k=5) -> Prediction:
        """Image (path, RGB uint8 array or PIL image) -> Prediction. Raises ImageError for bad files."""
        t0 = time.perf_counter()
        x = self.prepare(image)
        path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        return self._finish(x, path, t0, top_k)

    def predict_array(self, rgb, top_k=5, bgr=False) -> Prediction:
        """Decoded RGB uint8 frame (any size) -> Prediction; ``bgr=True`` takes OpenCV's BGR frame as it is."""
        t0 = time.perf_counter()
        return self._finish(self.prepare(rgb, bgr=bgr), None, t0, top_k)

    def predict_pixels(self, px, path=None, top_k=5, decode_ms=0.0) -> Prediction:
        """Already-resized (h, w, 3) pixels (from :meth:`pixels`) -> Prediction; adds ``decode_ms``."""
        t0 = time.perf_counter() - decode_ms / 1e3
        return self._finish(self.to_tensor(px), path, t0, top_k)

    def iter_predict(self, paths, workers=1, top_k=5):
        """Yield ``(path, Prediction | ImageError)`` in order (see :func:`edge.batch.iter_predict`)."""
        from edge.batch import iter_predict

        return iter_predict(self, paths, workers=workers, top_k=top_k)

    def describe(self) -> dict:
        return {"model": str(self.path), "requested_model": str(self.requested_path), "task": self.task,
                "backend": self.backend, "backend_version": self.loaded.backend_version,
                "backend_choice": self.backend_choice or None,
                "threads": self.threads, "edgetpu": self.on_edgetpu,
                "input_size": list(self.input_size), "input_dtype": self.input_dtype.name,
                "threshold": self.threshold, "labels": self.labels if self.task != PLAIN else len(self.labels),
                "variant": self.meta.get("variant"), "model_version": self.meta.get("model_version")}

    def __repr__(self):
        return (f"EdgeModel({str(self.path)!r}, task={self.task}, input={self.input_size}, "
                f"dtype={self.input_dtype.name}, backend={self.backend})")
