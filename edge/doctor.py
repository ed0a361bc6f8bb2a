"""``edgeinspect doctor``: what this machine can run, found without importing TensorFlow.

Packages are located with ``importlib.util.find_spec`` and versioned with
``importlib.metadata`` (neither executes the package), so the report is fast
and honest on a Pi that has half the stack installed.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys

import click


def _dist_version(*names):
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _has_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _package(module, *dists):
    ok = _has_module(module)
    return {"installed": ok, "version": _dist_version(*dists) if ok else None}


def _edgetpu_runtime():
    import ctypes
    import ctypes.util

    from edge.backend import EDGETPU_LIBRARY

    found = ctypes.util.find_library("edgetpu")
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
        loadable, error = True, None
    except OSError as exc:
        loadable, error = False, str(exc).splitlines()[0]
    return {"library": EDGETPU_LIBRARY, "found": found, "loadable": loadable, "error": error,
            "version": _dist_version("libedgetpu1-std", "libedgetpu1-max")}


def _edgetpu_compiler():
    exe = shutil.which("edgetpu_compiler")
    if not exe:
        return {"installed": False, "path": None, "version": None}
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
        version = (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else None
    except (OSError, subprocess.SubprocessError) as exc:
        version = f"failed to run: {exc}"
    return {"installed": True, "path": exe, "version": version}


def _edgetpu_devices():
    """USB Coral (1a6e:089a before firmware load, 18d1:9302 after) or a PCIe /dev/apex_*."""
    usb = []
    for dev in _glob("/sys/bus/usb/devices/*/idVendor"):
        try:
            vendor = open(dev).read().strip()
            product = open(os.path.join(os.path.dirname(dev), "idProduct")).read().strip()
        except OSError:
            continue
        if (vendor, product) in (("1a6e", "089a"), ("18d1", "9302")):
            usb.append(f"usb {vendor}:{product}")
    return usb + _glob("/dev/apex_*")


def _glob(pattern):
    import glob

    return sorted(glob.glob(pattern))


def collect() -> dict:
    from edge.backend import auto_choice, installed_backends

    backends = installed_backends()
    for b in backends:
        # LiteRT / tflite-runtime import in ~0.1 s; TensorFlow is never imported here.
        if b["installed"] and b["name"] != "tensorflow":
            try:
                importlib.import_module(b["module"])
                b["imports"] = True
            except Exception as exc:  # noqa: BLE001 - broken wheels raise anything
                b["imports"], b["error"] = False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    auto = auto_choice()
    cv = _package("cv2", "opencv-python-headless", "opencv-python", "opencv-contrib-python")
    report = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": _dist_version("numpy"),
        "pillow": _dist_version("pillow", "Pillow"),
        "backends": backends,
        "backend_auto": auto,
        "backend_env": os.environ.get("EDGEINSPECT_BACKEND"),
        "tensorflow": _package("tensorflow", "tensorflow", "tensorflow-cpu", "tf-nightly"),
        "edgetpu_runtime": _edgetpu_runtime(),
        "edgetpu_devices": _edgetpu_devices(),
        "edgetpu_compiler": _edgetpu_compiler(),
        "opencv": cv,
        "picamera2": _package("picamera2", "picamera2"),
        "paho_mqtt": _package("paho", "paho-mqtt"),
        "prometheus_client": _package("prometheus_client", "prometheus-client", "prometheus_client"),
        "asyncua": _package("asyncua", "asyncua"),
        "pymodbus": _package("pymodbus", "pymodbus"),
    }
    numpy_major = int((report["numpy"] or "0").split(".")[0])
    problems = []
    if not any(b["installed"] for b in backends):
        problems.append("no TFLite interpreter: pip install ai-edge-litert")
    for b in backends:
        if b.get("imports") is False:
            problems.append(f"{b['name']} is installed but does not import ({b['error']})")
    if auto == "tflite-runtime" and numpy_major >= 2:
        problems.append("tflite-runtime is built for numpy 1 and fails with numpy 2: pip install ai-edge-litert "
                        "(or 'numpy<2')")
    if auto == "tensorflow":
        problems.append("only TensorFlow can run models (slow start, large): pip install ai-edge-litert")
    report["problems"] = problems
    can = []
    if auto:
        can.append(f"run .tflite models on the CPU with {auto}")
    if report["edgetpu_runtime"]["loadable"]:
        can.append("run _edgetpu.tflite models" + ("" if report["edgetpu_devices"] else " (no Edge TPU detected now)"))
    if report["tensorflow"]["installed"]:
        can.append("train and export")
    if cv["installed"] or report["picamera2"]["installed"]:
        can.append("read cameras/videos")
    report["verdict"] = ("ready: can " + ", ".join(can)) if auto and not problems else (
        "not ready: " + "; ".join(problems))
    return report


def _yes(x, version=None):
    return (f"yes ({version})" if version else "yes") if x else "no"


def render(r) -> list:
    lines = [
        f"python            {r['python']} ({r['executable']})",
        f"platform          {r['platform']} [{r['machine']}], {r['cpu_count']} cores",
        f"numpy / pillow    {r['numpy']} / {r['pillow']}",
    ]
    for b in r["backends"]:
        mark = "  <- auto" if b["name"] == r["backend_auto"] else ""
        broken = f" BROKEN: {b['error']}" if b.get("imports") is False else ""
        lines.append(f"backend {b['name']:<15}{_yes(b['installed'], b['version'])}{broken}{mark}")
    if r["backend_env"]:
        lines.append(f"EDGEINSPECT_BACKEND={r['backend_env']}")
    tf = r["tensorflow"]
    lines.append(f"tensorflow        {_yes(tf['installed'], tf['version'])} (needed only to train/export)")
    rt = r["edgetpu_runtime"]
    lines.append(f"edge tpu runtime  {rt['library']}: " + ("loadable" if rt["loadable"] else
                 "not found (install libedgetpu1-std from Coral's apt repo to use an Edge TPU)"))
    lines.append(f"edge tpu devices  {', '.join(r['edgetpu_devices']) or 'none detected'}")
    c = r["edgetpu_compiler"]
    lines.append("edgetpu_compiler  " + (f"{c['path']} ({c['version']})" if c["installed"] else
                                          "not installed (x86-64 Linux only; needed to compile, not to run)"))
    lines.append(f"opencv            {_yes(r['opencv']['installed'], r['opencv']['version'])} (cameras, videos)")
    lines.append(f"picamera2         {_yes(r['picamera2']['installed'], r['picamera2']['version'])}")
    lines.append(f"paho-mqtt         {_yes(r['paho_mqtt']['installed'], r['paho_mqtt']['version'])} (watch --mqtt)")
    p = r["prometheus_client"]
    lines.append(f"prometheus-client {_yes(p['installed'], p['version'])} (watch metrics)")
    for key, what in (("asyncua", "watch --opcua-port"), ("pymodbus", "watch --modbus-port")):
        pk = r[key]
        hint = "" if pk["installed"] else ": pip install 'edgeinspect[plant]'"
        lines.append(f"{key:<18}{_yes(pk['installed'], pk['version'])} ({what}{hint})")
    lines.append(f"verdict           {r['verdict']}")
    return lines


@click.command("doctor", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(model, as_json):
    """Report what is installed: Python, interpreter backends, TensorFlow, Edge TPU, camera.

    With MODEL (.tflite), also the Edge TPU pre-flight: which ops edgetpu_compiler
    is predicted to map, the first op predicted on the CPU and why, and the
    parameter-cache estimate (a prediction from Coral's op table, not a compile).

    Imports nothing heavy (TensorFlow is only looked up, never imported).
    Exit code 0 when a TFLite interpreter is usable, 2 when not (or MODEL is unreadable).
    """
    import json

    r = collect()
    if model:
        from edge.edgetpu_preflight import preflight

        r["edgetpu_preflight"] = preflight(model)  # a bad file is an EdgeInspectError: one line, exit 2
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        for line in render(r):
            click.echo(line)
        if model:
            from edge.edgetpu_preflight import render as render_preflight

            click.echo(f"\nmodel {model}")
            for line in render_preflight(r["edgetpu_preflight"]):
                click.echo(line)
    if not r["backend_auto"]:
        from edge.cli import EXIT_ERROR

        click.get_current_context().exit(EXIT_ERROR)
