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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import ImageError, ModelError

PLAIN = "plain"  # a classifier without edgeinspect metadata


@dataclass
class Prediction:
    path: str | None
    verdict: str                      # "defective" | "good" | "-" (plain classifier without a "good" label)
    score: float                      # defect probability / normalised anomaly score (threshold applies)
    defect_type: str | None = None    # classifier: argmax of the type head (plain: top-1 label)
    type_prob: float | None = None
    latency_ms: float = 0.0           # preprocess + invoke + postprocess
    anomaly_map: np.ndarray | None = field(default=None, repr=False)
    top: list | None = None           # plain classifiers: [(label, prob), ...]

    @property
    def defective(self) -> bool:
        return self.verdict == "defective"

    def to_dict(self) -> dict:
        """JSON/CSV record (no map)."""
        d = {"path": self.path, "verdict": self.verdict, "score": _round(self.score),
             "defect_type": self.defect_type, "type_prob": _round(self.type_prob),
             "latency_ms": round(float(self.latency_ms), 3), "error": None}
        if self.top is not None:
            d["top"] = [[label, _round(p)] for label, p in self.top]
        return d


def _round(x, nd=6):
    return None if x is None else round(float(x), nd)


def read_labels(labels):
    """A labels file (one per line; ``N label`` / ``N: label`` lines also accepted) or a list."""
    if labels is None:
        return None
    if isinstance(labels, (list, tuple)):
        return [str(x) for x in labels]
    path = Path(labels)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read labels file ({getattr(exc, 'strerror', None) or exc}); "
                         "pass a text file with one label per line") from None
    out = [ln.strip() for ln in lines]
    while out and not out[-1]:
        out.pop()
    numbered = [ln.split(None, 1) for ln in out]
    if out and all(len(p) == 2 and p[0].rstrip(":").isdigit() for p in numbered):
        table = {int(p[0].rstrip(":")): p[1].strip() for p in numbered}
        out = [table.get(i, str(i)) for i in range(max(table) + 1)]
    if not out:
        raise ModelError(f"{path}: labels file is empty; pass a text file with one label per line")
    return out


def _quant(detail):
    scale, zp = detail.get("quantization", (0.0, 0))
    return float(scale), int(zp)


class EdgeModel:
    """One TFLite model ready to inspect images. Thread-safe (calls are serialised)."""

    def __init__(self, path, backend=None, threads=None, device=None, labels=None, threshold=None):
        from edge.backend import load_interpreter
        from edge.metadata import read_metadata

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found; pass the .tflite written by 'edgeinspect export'")
        self.requested_path = path
        meta = read_metadata(path)  # also rejects non-TFLite files with a one-line error
        loaded = load_interpreter(path, backend=backend, threads=threads, device=device)
        if loaded.model_path != path:  # Edge TPU -> CPU twin: its metadata is the truth now
            meta = read_metadata(loaded.model_path)
        self.path = loaded.model_path
        self.loaded = loaded
        self.backend = loaded.backend
        self.threads = loaded.threads
        self.on_edgetpu = loaded.edgetpu
        self.notes = list(loaded.notes)
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
        self.threshold = float(threshold if threshold is not None else self.meta.get("threshold", 0.5))

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
        if task == "classifier":
            self._types_i = idx["types"]
            n = sizes[self._types_i]
            if len(labels) != n:
                raise ModelError(f"{self.path}: {len(labels)} labels for a type head of {n} classes; "
                                 "re-export the model (or fix --labels)")
        else:
            self._map_i = idx["map"]
            shape = self._out[self._map_i][1]
            if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 1):
                raise ModelError(f"{self.path}: metadata says output {self._map_i} is the anomaly map, but it "
                                 f"has shape {shape}; re-export the model")
        self.labels = labels

    # -- inference ----------------------------------------------------------------------------------
    def pixels(self, image) -> np.ndarray:
        """Path / RGB uint8 array / PIL image -> (h, w, 3) uint8 pixels at the model's input size."""
        from edge.preprocess import to_model_input

        if isinstance(image, (str, os.PathLike)):
            from edge.imageio import load_image

            return load_image(image, self.input_size)
        if isinstance(image, np.ndarray):
            try:
                return to_model_input(image, self.input_size)
            except ValueError as exc:
                raise ImageError("<array>", str(exc), "pass an RGB uint8 HxWx3 array (convert BGR/gray first)") from None
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover
            Image = None
        if Image is not None and isinstance(image, Image.Image):
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

    def prepare(self, image) -> np.ndarray:
        """Image -> the exact input tensor, shape (1, h, w, 3), in the model's dtype."""
        return self.to_tensor(self.pixels(image))

    def _output(self, i):
        index, _, (scale, zp) = self._out[i]
        raw = self._it.get_tensor(index)[0]
        if scale > 0 and raw.dtype.kind in "iu":
            return (raw.astype(np.float32) - np.float32(zp)) * np.float32(scale)
        return raw.astype(np.float32, copy=False)

    def _run(self, x):
        with self._lock:
            self._it.set_tensor(self._in_index, x)
            self._it.invoke()
            if self.task == PLAIN:
                return (self._output(0),)
            if self.task == "classifier":
                return self._output(self._score_i), self._output(self._types_i)
            return self._output(self._score_i), self._output(self._map_i)

    def warmup(self):
        """One invoke on a blank frame: XNNPACK packs weights on the first call (watch calls this)."""
        self._run(self.to_tensor(np.zeros(self.input_size + (3,), np.uint8)))

    def invoke_raw(self, x):
        """Bare set_tensor + invoke (benchmarks compare the runtime against this)."""
        self._it.set_tensor(self._in_index, x)
        self._it.invoke()

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
        if self.task == "classifier":
            types = outs[1].reshape(-1)
            j = int(np.argmax(types))
            return Prediction(path, verdict, score, self.labels[j], float(types[j]),
                              (time.perf_counter() - t0) * 1e3)
        amap = outs[1]
        if amap.ndim == 3:
            amap = amap[..., 0]
        return Prediction(path, verdict, score, None, None, (time.perf_counter() - t0) * 1e3, amap)

    def predict(self, image, top_k=5) -> Prediction:
        """Image (path, RGB uint8 array or PIL image) -> Prediction. Raises ImageError for bad files."""
        t0 = time.perf_counter()
        x = self.prepare(image)
        path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        return self._postprocess(self._run(x), path, t0, top_k)

    def predict_array(self, rgb, top_k=5) -> Prediction:
        """Decoded RGB uint8 frame (any size) -> Prediction."""
        t0 = time.perf_counter()
        x = self.prepare(rgb)
        return self._postprocess(self._run(x), None, t0, top_k)

    def predict_pixels(self, px, path=None, top_k=5, decode_ms=0.0) -> Prediction:
        """Already-resized (h, w, 3) pixels (from :meth:`pixels`) -> Prediction; adds ``decode_ms``."""
        t0 = time.perf_counter() - decode_ms / 1e3
        return self._postprocess(self._run(self.to_tensor(px)), path, t0, top_k)

    def iter_predict(self, paths, workers=1, top_k=5):
        """Yield ``(path, Prediction | ImageError)`` in order; decodes up to ``workers`` images ahead
        on threads while the interpreter runs (Pillow releases the GIL while decoding)."""
        paths = list(paths)
        if workers <= 0 or len(paths) <= 1:
            for p in paths:
                try:
                    yield p, self.predict(p, top_k=top_k)
                except ImageError as exc:
                    yield p, exc
            return
        from concurrent.futures import ThreadPoolExecutor

        def decode(p):
            t = time.perf_counter()
            try:
                return self.pixels(p), (time.perf_counter() - t) * 1e3
            except ImageError as exc:
                return exc, 0.0

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            pending = [pool.submit(decode, p) for p in paths[: workers + 1]]
            nxt = len(pending)
            for p in paths:
                px, ms = pending.pop(0).result()
                if nxt < len(paths):
                    pending.append(pool.submit(decode, paths[nxt]))
                    nxt += 1
                if isinstance(px, ImageError):
                    yield p, px
                else:
                    yield p, self.predict_pixels(px, os.fspath(p), top_k, ms)

    def describe(self) -> dict:
        return {"model": str(self.path), "requested_model": str(self.requested_path), "task": self.task,
                "backend": self.backend, "backend_version": self.loaded.backend_version,
                "threads": self.threads, "edgetpu": self.on_edgetpu,
                "input_size": list(self.input_size), "input_dtype": self.input_dtype.name,
                "threshold": self.threshold, "labels": self.labels if self.task != PLAIN else len(self.labels),
                "variant": self.meta.get("variant"), "model_version": self.meta.get("model_version")}

    def __repr__(self):
        return (f"EdgeModel({str(self.path)!r}, task={self.task}, input={self.input_size}, "
                f"dtype={self.input_dtype.name}, backend={self.backend})")
