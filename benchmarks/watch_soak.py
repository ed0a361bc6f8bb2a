"""Soak test of ``edgeinspect watch``: 2,000 video frames with injected faults, in one process.

What it does, twice (a camera-paced run, then a saturated run):

* feeds an MJPG .avi through the real service (``edge.watch.service.Service``) with a
  :class:`tests.fixtures.watch.FaultySource` around the real OpenCV reader: corrupt frames,
  a disconnect (three failed reads, then reconnect and resume), a model swap mid-run (atomic
  rename, like ``export``) and later a broken replacement (must keep the old model);
* logs to a small-rotation JSONL log and checks from the log that every frame is accounted
  for (ok + error + dropped == sent, each frame id exactly once), that the service ran to the
  end, and that RSS (/proc/self/status) grows < 10 % between the first and last quarter;
* records end-to-end latency (frame read -> line on disk) p50/p95 and sustained frames/s;

then the faults of issue 19 (benchmarks/watch_soak_faults.py), one run each, with the same
accounting: ``faults`` (real corrupt frames, an fp32 model truncated and overwritten in place, a
dead MQTT broker, a hook escaping with setsid), ``reuse`` (file names reused for new parts) and
``logdisk`` (the result log on a full 64 KiB tmpfs: needs root for the mount).

and the issue-15 runs (benchmarks/watch_soak_plant.py, ``--only plant`` writes
``results/watch_soak_plant.json``): the same clip at 20 fps without sinks, with every sink on (OPC UA, Modbus,
webhook, live page, MQTT, metrics, rejects, hook, each read by a real client) and with all but ``--rejects``.

The model defaults to a tiny int8 224x224 edgeinspect model built in a child process (so this
process, like a Pi, never imports TensorFlow); pass ``--model RUN/export/model_int8.tflite``
for a real one.

    python -m benchmarks.watch_soak [--model M] [--fp32-model M] [--frames 2000] [--fps 50] [--only faults|plant]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "watch_soak.json"
PLANT_RESULTS = ROOT / "benchmarks" / "results" / "watch_soak_plant.json"


def rss_mb():
    from benchmarks.timing import proc_status_mb  # no TensorFlow (benchmarks/timing.py imports none)

    mb = proc_status_mb("VmRSS")
    return float("nan") if mb is None else mb


def tiny_model(out_dir, variant="int8"):
    code = ("import sys; from tests.fixtures.edge import make_tiny_tflite; "
            "print(make_tiny_tflite('classifier', sys.argv[1], sys.argv[2], size=224, "
            "name=f'soak_{sys.argv[2]}_224.tflite'))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    out = subprocess.run([sys.executable, "-c", code, str(out_dir), variant], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"could not build the tiny {variant} model: {out.stderr[-1500:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def retagged(model_bytes, version):
    """The same network with another model_version: a different file, like a re-export."""
    from edge.metadata import read_metadata, with_metadata

    meta = dict(read_metadata(model_bytes) or {})
    meta["model_version"] = version
    return with_metadata(model_bytes, meta)


def soak_run(name, video, model_src, work, frames, fps, drop, queue, faults):
    from edge.atomic import atomic_write_bytes
    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig
    from edge.watch.sources import VideoSource
    from tests.fixtures.watch import FaultySource

    model = work / f"{name}_model.tflite"
    original = Path(model_src).read_bytes()
    model.write_bytes(original)
    swapped = retagged(original, "soak-swapped")
    log = work / f"{name}.jsonl"
    inner = VideoSource(video, realtime_fps=fps or None)
    if fps:
        inner.live = True  # paced like a camera: it does not wait for inference
    src = FaultySource(inner, corrupt=faults["corrupt"], disconnect_at=faults["disconnect_at"])
    cfg = WatchConfig(model=str(model), source=str(video), log=str(log), log_max_mb=0.25, log_keep=50,
                      drop=drop, queue=queue, quiet=True, reload_interval=0.2, retry_initial=0.05, retry_max=0.4)
    svc = Service(cfg, source=src)
    samples, done = [], threading.Event()
    swap_at, break_at = int(frames * 0.4), int(frames * 0.7)

    def sampler():
        did_swap = did_break = False
        while not done.is_set():
            n = svc.counts["sent"]
            samples.append((n, rss_mb()))
            if not did_swap and n >= swap_at:
                atomic_write_bytes(model, swapped)
                did_swap = True
            if not did_break and n >= break_at:
                atomic_write_bytes(model, b"TFL3 truncated by a failed copy")
                did_break = True
            done.wait(0.05)

    th = threading.Thread(target=sampler, daemon=True)
    t0 = time.monotonic()
    th.start()
    died = None
    try:
        summary = svc.run(install_signals=False)
    except BaseException as exc:  # the whole point: this must never happen
        died, summary = f"{type(exc).__name__}: {exc}", {}
    wall = time.monotonic() - t0
    done.set()
    th.join()

    recs = list(read_log(log))
    items = [r for r in recs if "status" in r]
    by_status = {s: sum(r["status"] == s for r in items) for s in ("ok", "error", "dropped")}
    ids = [r["source"] for r in items]
    e2e = np.array([r["e2e_ms"] for r in items if r["status"] == "ok"], np.float64)
    lat = np.array([r["latency_ms"] for r in items if r["status"] == "ok"], np.float64)
    q = max(1, frames // 4)
    first = [m for n, m in samples if q // 2 <= n < q] or [m for n, m in samples[: max(1, len(samples) // 4)]]
    last = [m for n, m in samples if n >= frames - q] or [m for n, m in samples[-max(1, len(samples) // 4):]]
    rss_first, rss_last = float(np.median(first)), float(np.median(last))
    shas = [r["model_sha"] for r in items if r["status"] == "ok"]
    sha_changes = sum(a != b for a, b in zip(shas, shas[1:]))
    res = {
        "mode": f"paced {fps:g} fps, drop={drop}" if fps else f"as fast as possible, drop={drop}",
        "sent": src.delivered, "log_items": len(items), **by_status,
        "accounted": by_status["ok"] + by_status["error"] + by_status["dropped"] == src.delivered == frames,
        "each_frame_once": sorted(ids, key=lambda s: int(s.split(":")[1])) == [f"video:{i}" for i in range(frames)],
        "died": died, "ran_to_end": died is None and summary.get("sent") == frames,
        "disconnect_events": sum(r.get("event") == "source_disconnected" for r in recs),
        "reconnect_events": sum(r.get("event") == "source_reconnected" for r in recs),
        "model_reloads": sum(r.get("event") == "model_reloaded" for r in recs),
        "model_reload_failures": sum(r.get("event") == "model_reload_failed" for r in recs),
        "model_sha_changes_in_log": sha_changes,
        "log_files": len(list(work.glob(f"{name}.jsonl*"))),
        "rss_mb_first_quarter": round(rss_first, 1), "rss_mb_last_quarter": round(rss_last, 1),
        "rss_growth_pct": round(100 * (rss_last - rss_first) / rss_first, 2),
        "e2e_ms_p50": round(float(np.percentile(e2e, 50)), 2) if e2e.size else None,
        "e2e_ms_p95": round(float(np.percentile(e2e, 95)), 2) if e2e.size else None,
        "inference_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "inference_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
        # e2e_ms is stamped into the line just before it is written; durable adds the write + fsync.
        "e2e_durable_ms_p50": (summary.get("e2e_durable_ms") or {}).get("p50"),
        "e2e_durable_ms_p95": (summary.get("e2e_durable_ms") or {}).get("p95"),
        "sustained_fps": round((by_status["ok"] + by_status["error"]) / wall, 1),
        "wall_s": round(wall, 2),
    }
    res["passed"] = bool(res["accounted"] and res["each_frame_once"] and res["ran_to_end"]
                         and res["rss_growth_pct"] < 10 and res["model_reloads"] == 1
                         and res["model_reload_failures"] == 1 and res["reconnect_events"] >= 1)
    return res


def fault_runs(video, model, fp32, work, frames):
    """The issue-19 faults (benchmarks/watch_soak_faults.py), one run each."""
    from benchmarks.watch_soak_faults import faults_run, logdisk_run, reuse_run
    from tests.fixtures.watch import free_port

    fp32_bytes = Path(fp32).read_bytes()
    overwrite = retagged(fp32_bytes, "soak-overwritten-in-place")
    out = {}
    for name, run in (("faults", lambda: faults_run(video, fp32_bytes, overwrite, work, frames, free_port())),
                      ("reuse", lambda: reuse_run(model, work)),
                      ("logdisk", lambda: logdisk_run(model, video, work, frames))):
        print(f"run {name} ...", flush=True)
        out[name] = r = run()
        print(f"  {r['mode']}: " + ", ".join(f"{k} {r.get(k)}" for k in ("ok", "error", "dropped", "sent", "accounted",
                                                                         "each_frame_once", "died", "passed")),
              flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="int8 .tflite (default: build a tiny int8 224x224 edgeinspect model)")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--fps", type=float, default=50.0, help="camera pace of the first run")
    ap.add_argument("--fp32-model", help="fp32 .tflite truncated in place in the faults run (default: a tiny one)")
    ap.add_argument("--only", choices=("all", "faults", "plant"), default="all",
                    help="faults: only the issue-19 fault runs (faults, reuse, logdisk); plant: only the issue-15 "
                         "runs (no sinks vs all sinks, --plant-fps)")
    ap.add_argument("--plant-fps", type=float, default=20.0, help="camera pace of the issue-15 sink runs")
    ap.add_argument("--out", default=None, help=f"default {RESULTS.name} ({PLANT_RESULTS.name} with --only plant)")
    args = ap.parse_args(argv)

    from edge.atomic import utc_stamp
    from tests.fixtures.watch import make_video

    with tempfile.TemporaryDirectory(prefix="watch_soak_") as tmp:
        work = Path(tmp)
        t = time.monotonic()
        if args.model:
            model, model_desc = Path(args.model).resolve(), str(Path(args.model).resolve())
        else:
            model = tiny_model(work)
            model_desc = "tiny edgeinspect int8 classifier, 224x224 input (tests.fixtures.edge.make_tiny_tflite)"
        fp32 = (Path(args.fp32_model).resolve() if args.fp32_model else
                tiny_model(work, "fp32") if args.only != "plant" else None)
        print(f"model: {model_desc}; fp32 model {fp32} ({time.monotonic() - t:.1f} s to prepare)", flush=True)
        video = make_video(work / "soak.avi", n=args.frames, size=(args.width, args.height), fps=args.fps or 30)
        n = args.frames
        faults = {"corrupt": set(range(97, n, 97)), "disconnect_at": {int(n * 0.55): 3}}
        runs = {}
        plain = (("paced", args.fps, "oldest"), ("saturated", 0.0, "none")) if args.only == "all" else ()
        for name, fps, drop in plain:
            print(f"run {name}: {n} frames {args.width}x{args.height}, {len(faults['corrupt'])} corrupt, "
                  f"1 disconnect (3 failed reads), model swap at 40 %, broken model at 70 % ...", flush=True)
            runs[name] = soak_run(name, video, model, work, n, fps, drop, 8,
                                  {"corrupt": set(faults["corrupt"]), "disconnect_at": dict(faults["disconnect_at"])})
            r = runs[name]
            print(f"  {r['mode']}: ok {r['ok']} + error {r['error']} + dropped {r['dropped']} = {r['log_items']} "
                  f"(sent {r['sent']}) accounted={r['accounted']} once={r['each_frame_once']} died={r['died']}", flush=True)
        if args.only in ("all", "faults"):
            runs.update(fault_runs(video, model, fp32, work, n))
        if args.only in ("all", "plant"):
            from benchmarks.watch_soak_plant import plant_runs

            runs.update(plant_runs(video, model, work, n, args.plant_fps))

    out = {
        "benchmark": "watch_soak", "model": model_desc, "frames": n, "video": f"MJPG .avi {args.width}x{args.height}",
        "faults": None if args.only == "plant" else {"corrupt_frames": len(faults["corrupt"]), "disconnects": 1, "failed_reads": 3,
                   "model_swap_at": 0.4, "broken_model_at": 0.7,
                   "issue_19": "faults: real corrupt MJPG frames every 61st, disconnect at 60 %, fp32 model truncated in "
                               "place at 30 % and overwritten in place at 45 %, MQTT to a port without a broker, "
                               "on-defect hook escaping with setsid; reuse: 150 parts into 10 reused file names; "
                               "logdisk: result log on a 64 KiB tmpfs, stop + archive + restart until the clip ends"},
        "plant_issue_15": None if args.only == "faults" else (
            f"{n} frames at {args.plant_fps:g} fps (drop=oldest, no faults), once without sinks and once with all "
            "(rejects, metrics, MQTT to a local mosquitto, --on-defect true, OPC UA with a subscribed asyncua client, "
            "Modbus TCP polled at 10 Hz by pymodbus, webhook to a local receiver, live page with an SSE stream and a "
            "1 s poller fetching the new images)"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "created": utc_stamp(),
        "runs": runs, "passed": all(r["passed"] for r in runs.values()),
    }
    cols = ("ok", "error", "dropped", "sent", "e2e_ms_p50", "e2e_ms_p95", "e2e_durable_ms_p50", "e2e_durable_ms_p95",
            "inference_ms_p50", "sustained_fps", "rss_growth_pct", "passed")
    w = max(len(c) for c in cols) + 2
    print("\n" + f"{'run':<10}" + "".join(f"{c:>{w}}" for c in cols))
    for name, r in runs.items():
        print(f"{name:<10}" + "".join(f"{str(r.get(c, '-')):>{w}}" for c in cols))
    from edge.atomic import atomic_write_json

    out_path = args.out or str(PLANT_RESULTS if args.only == "plant" else RESULTS)
    atomic_write_json(out_path, out)
    print(f"\nwrote {out_path}; passed={out['passed']}")
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
