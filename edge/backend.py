"""Which TFLite interpreter runs the model, and the Edge TPU delegate.

Order of preference (``auto``): ``ai_edge_litert`` (the maintained LiteRT
wheel), ``tflite_runtime`` (legacy Pi/Coral installs), then
``tensorflow.lite`` (a workstation that already has TensorFlow). TensorFlow is
only ever imported in that last fallback, inside a function, because importing
it costs seconds and hundreds of MB on a device.

A backend can import fine and still fail when the interpreter is created (the
classic case: a ``tflite_runtime`` wheel built against numpy 1 under numpy 2),
so a backend only counts as working once it has built an interpreter for the
model; each failure is kept and reported if nothing works.

``openvino`` (edge/openvino_backend.py, the ``openvino`` extra) runs the same
file on OpenVINO's CPU plugin; it is never picked by ``auto``, only by name or
by ``fastest``: every installed TFLite-file backend but TensorFlow builds the
model, a short interleaved self-benchmark picks the quickest, and the timings are
logged and kept in ``Loaded.choice``.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.edgetpu import (  # noqa: F401 - part of this module's API
    EDGETPU_INSTALL_HINT, EDGETPU_LIBRARY, EdgeTPUError, EdgeTPUFallbackWarning, _one_line, cpu_twin,
    edgetpu_delegate_options, load_edgetpu_delegate,
)
from edge.errors import EdgeInspectError, ModelError

ENV_VAR = "EDGEINSPECT_BACKEND"
BACKENDS = ("litert", "tflite-runtime", "tensorflow")  # what auto tries, in order
CHOICES = BACKENDS + ("openvino",)  # what a user may name (plus auto and fastest)
FASTEST = "fastest"
FASTEST_RUNS = 15  # interleaved invokes per backend: ~0.1 s for a MobileNetV2 at 224 px
# backend -> (import name for find_spec, distribution names for the version, module holding Interpreter)
_SPECS = {
    "litert": ("ai_edge_litert", ("ai-edge-litert",), "ai_edge_litert.interpreter"),
    "tflite-runtime": ("tflite_runtime", ("tflite-runtime",), "tflite_runtime.interpreter"),
    "tensorflow": ("tensorflow", ("tensorflow", "tensorflow-cpu", "tf-nightly"), "tensorflow.lite"),
    "openvino": ("openvino", ("openvino",), "edge.openvino_backend"),
}
log = logging.getLogger("edgeinspect.backend")
_INSTALL_HINT = "pip install ai-edge-litert (or 'edgeinspect[edge]')"

class BackendError(EdgeInspectError):
    """No TFLite interpreter could run the model (lists every attempt)."""


def normalize_backend(name):
    """None/'auto'/'' -> None; accepts 'tflite_runtime', 'ai-edge-litert', 'tf' spellings."""
    if name is None:
        return None
    key = str(name).strip().lower().replace("_", "-")
    if key in ("", "auto"):
        return None
    aliases = {"ai-edge-litert": "litert", "lite-rt": "litert", "tflite": "tflite-runtime", "tf": "tensorflow",
               "tensorflow-lite": "tensorflow", "tf-lite": "tensorflow"}
    key = aliases.get(key, key)
    if key not in CHOICES + (FASTEST,):
        raise BackendError(f"unknown backend {name!r}; choose one of auto, {', '.join(CHOICES)}, {FASTEST}")
    return key


def requested_backend(backend=None):
    """Explicit argument wins, then ``$EDGEINSPECT_BACKEND``, else None (auto)."""
    if backend is not None and str(backend).strip().lower() not in ("", "auto"):
        return normalize_backend(backend)
    return normalize_backend(os.environ.get(ENV_VAR))


def default_threads():
    return os.cpu_count() or 1


def resolve_threads(threads=None):
    if threads is None or int(threads) <= 0:
        return default_threads()
    return int(threads)


@dataclass
class BackendModule:
    name: str
    Interpreter: type
    load_delegate: object
    version: str
    module: str


def _version(name):
    for dist in _SPECS[name][1]:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _import_tensorflow_lite():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # fallback: only when neither LiteRT nor tflite-runtime works

    return tf.lite, tf.lite.experimental.load_delegate, tf.__version__


def import_backend(name) -> BackendModule:
    """Import one backend's Interpreter; raises ImportError (or whatever the wheel raises) on failure."""
    name = normalize_backend(name)
    if name == "tensorflow":
        lite, load_delegate, version = _import_tensorflow_lite()
        return BackendModule(name, lite.Interpreter, load_delegate, version, "tensorflow.lite")
    module_name = _SPECS[name][2]
    mod = importlib.import_module(module_name)
    if name == "openvino":
        import openvino  # noqa: F401 - fail here (import failed), not at the first model
        return BackendModule(name, mod.Interpreter, None, mod.version() or "unknown", "openvino")
    return BackendModule(name, mod.Interpreter, mod.load_delegate, _version(name) or "unknown", module_name)


def installed_backends():
    """Backends whose package is installed, found without importing them (doctor uses this)."""
    out = []
    for name in CHOICES:
        top = _SPECS[name][0]
        try:
            found = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        out.append({"name": name, "installed": found, "version": _version(name) if found else None,
                    "module": _SPECS[name][2]})
    return out


def auto_choice():
    """The backend ``auto`` would try first (installed, in preference order), without importing it."""
    forced = requested_backend(None)
    if forced:
        return forced
    for b in installed_backends():
        if b["installed"] and b["name"] in BACKENDS:
            return b["name"]
    return None


def backend_info(name=None) -> dict:
    """name, version, module of a backend (default: what auto picks); imports nothing heavy."""
    name = requested_backend(name) or auto_choice()
    if name is None:
        return {"name": None, "version": None, "module": None}
    return {"name": name, "version": _version(name), "module": _SPECS[name][2]}


@dataclass
class Loaded:
    """An allocated interpreter and how it was obtained."""

    interpreter: object
    backend: str
    backend_version: str
    model_path: Path
    threads: int
    edgetpu: bool = False
    attempts: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    content: bytes = field(default=b"", repr=False)  # the model bytes the interpreter runs (kept alive here)
    choice: str = ""  # how --backend fastest decided (empty otherwise)


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the C++ runtime's 'INFO: Created TensorFlow Lite XNNPACK delegate' line (fd 2), which
    would otherwise precede every predict run; EDGEINSPECT_VERBOSE=1 keeps it."""
    if os.environ.get("EDGEINSPECT_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _candidates(backend):
    forced = requested_backend(backend)
    return [forced] if forced else list(BACKENDS)


def fastest_candidates():
    """Backends ``fastest`` races: installed ones that read the .tflite file, TensorFlow excepted (seconds
    to import, and never faster than LiteRT on the same file)."""
    return [b["name"] for b in installed_backends() if b["installed"] and b["name"] != "tensorflow"]


def _create(path, content, backend, threads, device, attempts):
    """Try backends in order; return (BackendModule, interpreter, delegate_or_None)."""
    from edge.metadata import is_edgetpu_model

    wants_tpu = is_edgetpu_model(content)
    tpu_error = None
    for name in _candidates(backend):
        try:
            mod = import_backend(name)
        except Exception as exc:  # noqa: BLE001 - a broken wheel can raise anything on import
            attempts.append(f"{name}: import failed ({_one_line(exc)})")
            continue
        delegates = []
        if wants_tpu and name == "openvino":
            attempts.append(f"{name}: cannot run Edge TPU-compiled files")
            raise EdgeTPUError("OpenVINO cannot run Edge TPU-compiled files (edgetpu-custom-op)")
        if wants_tpu:
            try:
                delegates = [load_edgetpu_delegate(mod, device)]
            except EdgeTPUError as exc:
                tpu_error = exc
                attempts.append(f"{name}: {exc}")
                # The delegate is missing for every backend alike (it is a system library).
                raise
        try:
            with _quiet_native_stderr():
                # From bytes in memory, never model_path: the interpreter would mmap the file, and a
                # model truncated or overwritten in place (': > m.tflite', scp) then kills us with SIGBUS.
                it = mod.Interpreter(model_content=content, num_threads=threads,
                                     experimental_delegates=delegates or None)
                it.allocate_tensors()
        except Exception as exc:  # noqa: BLE001 - e.g. numpy ABI errors from tflite-runtime surface here
            attempts.append(f"{name}: interpreter failed ({_one_line(exc)})")
            continue
        return mod, it, bool(delegates)
    raise tpu_error or BackendError(
        f"{path}: no TFLite interpreter could run this model; tried "
        + "; ".join(attempts)
        + f". Fix: {_INSTALL_HINT}" + (f", or unset {ENV_VAR}" if os.environ.get(ENV_VAR) else "")
    )


def load_interpreter(path, backend=None, threads=None, device=None, content=None) -> Loaded:
    """Create and allocate an interpreter for ``path`` (from ``content``, its bytes, when given).

    The file is read once into memory (``Loaded.content``); hash those bytes to
    name the model that really runs.
    Edge TPU models get libedgetpu's delegate; when it is missing, the CPU
    int8 twin beside the file (``X_edgetpu.tflite`` -> ``X.tflite``) is used
    with an :class:`EdgeTPUFallbackWarning`, else :class:`EdgeTPUError` says
    what to install.
    """
    from edge.metadata import read_model_bytes

    path = Path(path)
    content = read_model_bytes(path) if content is None else bytes(content)
    threads = resolve_threads(threads)
    if requested_backend(backend) == FASTEST:
        return _load_fastest(path, content, threads, device)
    attempts: list = []
    try:
        mod, it, on_tpu = _create(path, content, backend, threads, device, attempts)
        return Loaded(it, mod.name, mod.version, path, threads, on_tpu, attempts, content=content)
    except EdgeTPUError as exc:
        twin = cpu_twin(path)
        if twin is None:
            raise EdgeTPUError(
                f"{path}: compiled for the Edge TPU, but {exc}; {EDGETPU_INSTALL_HINT} "
                f"(or pass the CPU int8 model that edgetpu_compiler was given)"
            ) from None
        note = (f"{path.name}: Edge TPU runtime unavailable ({exc}); running the CPU int8 twin {twin.name} "
                f"instead (slower). To use the Edge TPU: {EDGETPU_INSTALL_HINT}")
        warnings.warn(note, EdgeTPUFallbackWarning, stacklevel=3)
        attempts = []
        content = read_model_bytes(twin)
        mod, it, _ = _create(twin, content, backend, threads, device, attempts)
        return Loaded(it, mod.name, mod.version, twin, threads, False, attempts, [note], content)


def _invoke_ms(it, runs):
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros([int(v) for v in d["shape"]], d["dtype"]))
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        yield (time.perf_counter() - t) * 1e3


def _load_fastest(path, content, threads, device):
    """Build the model on every candidate backend, time them interleaved, keep the quickest."""
    loaded, attempts = [], []
    for name in fastest_candidates():
        try:
            loaded.append(load_interpreter(path, backend=name, threads=threads, device=device, content=content))
        except EdgeInspectError as exc:
            attempts.append(f"{name}: {_one_line(exc)}")
    if not loaded:
        raise BackendError(f"{path}: --backend fastest found no backend that runs this model; tried "
                           + ("; ".join(attempts) or "none installed") + f". Fix: {_INSTALL_HINT}")
    times = {lo.backend: [] for lo in loaded}
    for lo in loaded:  # warm-up: the first invokes pack weights / compile kernels
        list(_invoke_ms(lo.interpreter, 3))
    for _ in range(FASTEST_RUNS):
        for lo in loaded:
            times[lo.backend].extend(_invoke_ms(lo.interpreter, 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = min(loaded, key=lambda lo: med[lo.backend])
    note = ("--backend fastest: " + ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(med.items(), key=lambda kv: kv[1]))
            + f" (median of {FASTEST_RUNS} invokes, {threads} threads) -> {best.backend}"
            + (f"; not runnable: {'; '.join(attempts)}" if attempts else ""))
    log.info(note)
    best.choice = note
    best.attempts = attempts + best.attempts
    return best
