"""Edge TPU compiler orchestration: run ``edgetpu_compiler``, read its log, refuse CPU fallbacks.

The compiler exists only for x86-64 Linux (Debian/Ubuntu package ``edgetpu-compiler``).
Every op it cannot map splits the graph and runs on the host CPU, which is
usually far slower than the whole model on the CPU, so a fallback is an error
unless the caller allows it.
"""
from __future__ import annotations

import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from export.errors import CompilerMissing, ExportError

COMPILER = "edgetpu_compiler"
INSTALL_HINT = (
    "install it on an x86-64 Debian/Ubuntu machine: add the Coral apt repository "
    "(https://coral.ai/docs/edgetpu/compiler/) and 'sudo apt-get install edgetpu-compiler', "
    "then re-run 'edgeinspect export RUN --edgetpu' there (copy the run folder), "
    "or use Coral's Colab compiler notebook on export/model_int8.tflite"
)
MAPPED = "Mapped to Edge TPU"
_TPU_RE = re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)")
_CPU_RE = re.compile(r"Number of operations that will run on CPU:\s*(\d+)")
_TOTAL_RE = re.compile(r"Total number of operations:\s*(\d+)")
_SUBGRAPHS_RE = re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)")
_VERSION_RE = re.compile(r"Edge TPU Compiler version\s*(\S+)")
_ROW_RE = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")


class EdgeTPUFallback(ExportError):
    """Some ops would run on the CPU."""


def platform_supported() -> bool:
    return platform.system() == "Linux" and platform.machine().lower() in ("x86_64", "amd64")


def find_compiler():
    """Path of edgetpu_compiler, or None."""
    return shutil.which(COMPILER)


def missing_message() -> str:
    where = f"{platform.system()} {platform.machine()}"
    if not platform_supported():
        return (f"{COMPILER} is not available for {where} (Google ships it for x86-64 Linux only); "
                f"{INSTALL_HINT}")
    return f"{COMPILER} not found on PATH on this {where} machine; {INSTALL_HINT}"


def parse_log(text: str) -> dict:
    """Counts and the per-op table of an edgetpu_compiler summary/log."""
    ops = []
    in_table = False
    for line in text.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        if in_table:
            m = _ROW_RE.match(line)
            if m:
                ops.append({"op": m.group(1), "count": int(m.group(2)), "status": m.group(3),
                            "mapped": m.group(3).strip() == MAPPED})
            elif line.strip() and ops:
                in_table = False
    tpu = _TPU_RE.search(text)
    cpu = _CPU_RE.search(text)
    total = _TOTAL_RE.search(text)
    sub = _SUBGRAPHS_RE.search(text)
    ver = _VERSION_RE.search(text)
    n_tpu = int(tpu.group(1)) if tpu else sum(o["count"] for o in ops if o["mapped"])
    n_cpu = int(cpu.group(1)) if cpu else sum(o["count"] for o in ops if not o["mapped"])
    return {
        "compiler_version": ver.group(1) if ver else None,
        "ops_on_edgetpu": n_tpu,
        "ops_on_cpu": n_cpu,
        "total_ops": int(total.group(1)) if total else n_tpu + n_cpu,
        "edgetpu_subgraphs": int(sub.group(1)) if sub else None,
        "ops": ops,
        "cpu_ops": [o for o in ops if not o["mapped"]],
    }


def cpu_ops_text(parsed: dict) -> str:
    rows = parsed["cpu_ops"]
    if not rows:
        return f"{parsed['ops_on_cpu']} op(s) (the compiler log lists no op table)"
    return "; ".join(f"{o['op']} x{o['count']} ({o['status']})" for o in rows)


def check_static_shapes(path):
    """The compiler needs a fixed batch of 1 (and fixed H, W); say so before it fails obscurely."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    for d in it.get_input_details():
        sig = [int(v) for v in d.get("shape_signature", d["shape"])]
        if any(v < 0 for v in sig) or (sig and sig[0] != 1):
            raise ExportError(f"{path}: input {d['name']} has dynamic shape {sig} (batch must be exactly 1) - the Edge TPU "
                              "compiler cannot map it; export with 'edgeinspect export', which rebuilds the model "
                              "with batch 1")
        if np.dtype(d["dtype"]) not in (np.uint8, np.int8):
            raise ExportError(f"{path}: input is {np.dtype(d['dtype']).name}; the Edge TPU needs a full-integer "
                              "model (the int8 variant)")


def compile_model(int8_path, out_path, allow_cpu_ops=False, timeout=600, progress=None):
    """Compile ``int8_path``; returns (compiled bytes, parsed log dict).

    Works in a temporary folder next to ``out_path`` so the final file only
    appears after the caller has tagged it with metadata and renamed it in.
    """
    compiler = find_compiler()
    if compiler is None:
        raise CompilerMissing(missing_message())
    int8_path = Path(int8_path)
    out_path = Path(out_path)
    check_static_shapes(int8_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edgetpu.", dir=out_path.parent) as tmp:
        src = Path(tmp) / "model_int8.tflite"  # the compiler names its output after its input
        shutil.copyfile(int8_path, src)
        cmd = [compiler, "-s", "-o", tmp, str(src)]
        if progress:
            progress(f"  running {' '.join([COMPILER, '-s', '-o', '<tmp>', int8_path.name])}")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ExportError(f"{COMPILER} took longer than {timeout} s on {int8_path}; "
                              "try a smaller input size or alpha") from None
        except OSError as exc:
            raise CompilerMissing(f"{compiler}: cannot run ({exc.strerror or exc}); {INSTALL_HINT}") from None
        log_file = Path(tmp) / "model_int8_edgetpu.log"
        text = proc.stdout + "\n" + proc.stderr
        parsed = parse_log(text)
        if log_file.is_file() and not parsed["ops"]:
            # -s prints the op table; without it only the .log file has it (never parse both: rows would double).
            text += "\n" + log_file.read_text(errors="replace")
        compiled = Path(tmp) / "model_int8_edgetpu.tflite"
        if proc.returncode != 0 or not compiled.is_file():
            last = next((ln for ln in reversed(text.strip().splitlines()) if ln.strip()), "no output")
            raise ExportError(f"{COMPILER} failed on {int8_path} (exit {proc.returncode}): {last.strip()}; "
                              "the model must be fully int8 with a fixed batch of 1")
        parsed = parse_log(text)
        parsed["log"] = text.strip()
        parsed["command"] = [COMPILER, "-s", "-o", str(out_path.parent), str(int8_path)]
        data = compiled.read_bytes()
    if parsed["ops_on_cpu"] and not allow_cpu_ops:
        raise EdgeTPUFallback(
            f"{int8_path}: {parsed['ops_on_cpu']} of {parsed['total_ops']} ops would run on the CPU, not the "
            f"Edge TPU: {cpu_ops_text(parsed)}; change the model or pass --allow-cpu-ops to accept it")
    return data, parsed
