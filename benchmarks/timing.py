"""How bench times things: warm latency, the litert-benchmark reference, cold start and peak RSS in a child.

No TensorFlow at import: the watch soak reads memory through :func:`proc_status_mb` "like a Pi".
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def latency_stats(ms) -> dict:
    ms = np.asarray(ms, dtype=np.float64)
    if ms.size == 0:
        return {}
    mean = float(ms.mean())
    return {
        "n": int(ms.size),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": mean,
        "min": float(ms.min()),
        "throughput_ips": 1000.0 / mean if mean > 0 else float("nan"),
    }


def timed(fn, inputs, warmup, repeats):
    """Call fn on inputs (cycling) warmup times untimed, then repeats times timed; returns ms list."""
    n = len(inputs)
    for i in range(warmup):
        fn(inputs[i % n])
    out = []
    for i in range(repeats):
        x = inputs[i % n]
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


LB_RESOLUTION_MS = 0.01  # litert-benchmark's --result_json latencies are in ms with 2 decimals


def _resolution_note(res):
    if res["avg_ms"] == 0:  # it rounds to 10 us: a tiny model on a fast core reads 0.0
        res["note"] = f"under litert-benchmark's {LB_RESOLUTION_MS} ms resolution"
    return res


def _lb_cmd(path, threads):
    return f"litert-benchmark --model {Path(path).name} --num_threads {threads}"


def litert_benchmark_ms(path, threads, warmup, repeats, timeout=300):
    """Average ms from the ``litert-benchmark`` tool that ships with ai-edge-litert (or why not)."""
    exe = shutil.which("litert-benchmark")
    if exe is None:
        return {"avg_ms": None, "note": "litert-benchmark not on PATH (it ships with ai-edge-litert)"}
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp) / "lb.json"
        cmd = [exe, "--model", str(path), "--num_threads", str(threads), "--num_runs", str(max(repeats, 1)),
               "--warmup_runs", str(max(warmup, 1)), "--result_json", str(out_json)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"avg_ms": None, "note": f"litert-benchmark timed out after {timeout}s"}
        if out_json.is_file():
            lat = json.loads(out_json.read_text()).get("latency", {})
            res = {"avg_ms": lat.get("avg_ms"), "median_ms": lat.get("median_ms"), "p95_ms": lat.get("p95_ms"),
                   "init_ms": lat.get("init_ms"), "num_runs": lat.get("num_runs"), "command": _lb_cmd(path, threads)}
            return _resolution_note(res)
        text = (proc.stdout or "") + (proc.stderr or "")
        for line in text.splitlines():
            if "Inference (avg)" in line:
                try:
                    return _resolution_note({"avg_ms": float(line.split(":", 1)[1].split("ms")[0]),
                                             "command": _lb_cmd(path, threads)})
                except ValueError:
                    pass
        last = text.strip().splitlines()[-1] if text.strip() else f"exit {proc.returncode}"
        return {"avg_ms": None, "note": f"litert-benchmark failed: {last[:200]}"}


_CHILD = "from benchmarks.timing import _cold_child; _cold_child()"


def proc_status_mb(key):
    """A /proc/self/status memory field (VmRSS, VmHWM) in MB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _vmrss_mb():
    return proc_status_mb("VmRSS")


def _peak_rss_mb():
    # VmHWM belongs to this process image; ru_maxrss would also count the (large) parent we were forked from,
    # because Linux carries the pre-exec high-water mark over into ru_maxrss.
    hwm = proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cold_child():
    """Runs in a fresh interpreter: imports, then load + first inference, then peak RSS as JSON on stdout."""
    args = json.loads(sys.argv[1])
    t_imp = time.perf_counter()
    if args["kind"] == "keras":
        from trainer.layers import load_model
        from trainer.tfutil import import_keras

        import_keras()
    else:
        from edge.runtime import EdgeModel
    from edge.imageio import load_image

    import_s = time.perf_counter() - t_imp
    rss_imported = _vmrss_mb()
    t0 = time.perf_counter()
    if args["kind"] == "keras":
        model = load_model(Path(args["run_dir"]) / "model.keras")
        load_s = time.perf_counter() - t0
        img = load_image(args["image"], tuple(args["size"]))
        model.predict(img[None].astype(np.float32), verbose=0)
    else:
        model = EdgeModel(args["path"], threads=args["threads"])
        load_s = time.perf_counter() - t0
        img = load_image(args["image"], tuple(args["size"]))
        model.predict_array(img)
    first_s = time.perf_counter() - t0
    print("BENCH_CHILD " + json.dumps({
        "import_s": import_s, "load_s": load_s, "cold_start_s": first_s,
        "rss_after_import_mb": rss_imported, "peak_rss_mb": _peak_rss_mb(),
    }))


def cold_start(kind, *, path=None, run_dir=None, image=None, size=(224, 224), threads=None, timeout=300):
    """Load + first inference in a fresh process (imports timed separately), and that process's peak RSS."""
    args = {"kind": kind, "path": str(path) if path else None, "run_dir": str(run_dir) if run_dir else None,
            "image": str(image), "size": list(size), "threads": threads}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"note": f"cold-start child timed out after {timeout}s"}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_CHILD "):
            return json.loads(line[len("BENCH_CHILD "):])
    err = (proc.stderr or "").strip().splitlines()
    return {"note": f"cold-start child failed: {err[-1][:200] if err else proc.returncode}"}


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod, name in (("tensorflow", "tensorflow"), ("keras", "keras"), ("ai_edge_litert", "ai-edge-litert"),
                      ("numpy", "numpy")):
        try:
            from importlib.metadata import version

            versions[name] = version(name if name != "tensorflow" else "tensorflow-cpu")
        except Exception:  # noqa: BLE001 - a missing package is simply not listed
            try:
                from importlib.metadata import version

                versions[name] = version(mod)
            except Exception:  # noqa: BLE001
                pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}
