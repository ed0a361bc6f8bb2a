"""The issue-19 faults for ``benchmarks/watch_soak.py``, each on the real service in this process:

* ``faults``: an MJPG clip with really corrupt frames (JPEG data zeroed, container intact) plus a
  disconnect, an fp32 model truncated in place (``: > model.tflite``) and then overwritten in place
  (scp-style, same inode) while frames flow, MQTT to a port where no broker listens, and an
  ``--on-defect`` hook that escapes its process group (``setsid ... &``) for the first defects;
* ``reuse``: a camera that writes its parts into 10 file names round-robin, each name overwritten
  with the next part (every third one defective): every version must be inspected exactly once;
* ``logdisk``: the result log on a 64 KiB tmpfs: the disk fills, the service stops with one line
  (exit 3 in the CLI, systemd restarts it), the operator archives the log and the service is started
  again on the same camera, until the clip ends.

Each returns a result dict with sent / ok / error / dropped, the checks, and ``passed``.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path



def frame_numbers(items):
    """'video:17' -> 17 for each logged item, in log order."""
    return [int(r["source"].split(":")[1]) for r in items]


def _alive_run(svc):
    try:
        return svc.run(install_signals=False), None
    except BaseException as exc:  # the whole point: this must never happen
        return {}, f"{type(exc).__name__}: {exc}"


def faults_run(video_src, fp32_bytes, overwrite_bytes, work, frames, mqtt_port, escapes=5, fps=None):
    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig
    from edge.watch.sources import VideoSource
    from tests.fixtures.watch import FaultySource, corrupt_video_frames

    video = work / "faults.avi"
    shutil.copy(video_src, video)
    corrupt = sorted(range(61, frames, 61))
    corrupt_video_frames(video, corrupt)
    model, log, pids = work / "faults_fp32.tflite", work / "faults.jsonl", work / "escaped.pids"
    model.write_bytes(fp32_bytes)
    pids.write_text("")
    # The first `escapes` defects start a child in its own session that outlives the hook (pid recorded
    # so this benchmark ends what it started); every later hook run proves the worker still works.
    hook = (f"[ $(wc -l < {pids}) -lt {escapes} ] && setsid sh -c 'echo $$ >> {pids}; exec sleep 60' & exit 0")
    src = FaultySource(VideoSource(video, realtime_fps=fps), disconnect_at={int(frames * 0.6): 3})
    cfg = WatchConfig(model=str(model), source=str(video), log=str(log), quiet=True, reload_interval=0.1,
                      retry_initial=0.05, retry_max=0.4, mqtt=f"127.0.0.1:{mqtt_port}", on_defect=hook,
                      hook_timeout=2.0)
    svc = Service(cfg, source=src)
    done = threading.Event()
    truncate_at, overwrite_at = int(frames * 0.3), int(frames * 0.45)
    marks = {}

    def saboteur():
        while not done.is_set():
            n = svc.counts["sent"]
            if "truncated" not in marks and n >= truncate_at:
                with open(model, "r+b") as f:
                    f.truncate(0)  # ': > model.tflite' on the file the interpreter was built from
                marks["truncated"], marks["t"] = n, time.monotonic()
            # Overwritten once the truncation was noticed (or after 5 s): both faults must be seen.
            noticed = svc.counts["reload_failures"] or time.monotonic() - marks.get("t", 1e18) > 5
            if "truncated" in marks and "overwritten" not in marks and n >= overwrite_at and noticed:
                with open(model, "r+b") as f:  # scp-style: same inode, new bytes
                    f.write(overwrite_bytes)
                    f.truncate(len(overwrite_bytes))
                marks["overwritten"] = n
            done.wait(0.01)

    th = threading.Thread(target=saboteur, daemon=True)
    t0 = time.monotonic()
    th.start()
    summary, died = _alive_run(svc)
    wall = time.monotonic() - t0
    done.set()
    th.join()
    escaped = [int(p) for p in pids.read_text().split()]
    still_running = 0
    for pid in escaped:  # end the escaped children this run started, by pid
        try:
            os.kill(pid, 0)
            still_running += 1
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    recs = list(read_log(log))
    items = [r for r in recs if "status" in r]
    by = {s: sum(r["status"] == s for r in items) for s in ("ok", "error", "dropped")}
    errs = {int(r["source"].split(":")[1]) for r in items if r["status"] == "error"}
    hook, mqtt = summary.get("hook") or {}, summary.get("mqtt") or {}
    res = {
        "mode": "corrupt MJPG frames + disconnect, fp32 model truncated and overwritten in place, dead broker, "
                "escaping hook",
        "sent": src.delivered, "log_items": len(items), **by,
        "accounted": by["ok"] + by["error"] + by["dropped"] == src.delivered == frames,
        "each_frame_once": sorted(frame_numbers(items)) == list(range(frames)),
        "died": died, "ran_to_end": died is None and summary.get("sent") == frames,
        "corrupt_frames": len(corrupt), "corrupt_frames_logged_as_error": len(errs & set(corrupt)),
        "errors_not_corrupt": sorted(errs - set(corrupt))[:10],
        "truncated_at": marks.get("truncated"), "overwritten_at": marks.get("overwritten"),
        "model_reload_failures": summary.get("reload_failures"), "model_reloads": summary.get("reloads"),
        "sha_after_overwrite_differs": len({r["model_sha"] for r in items if r["status"] == "ok"}) == 2,
        "mqtt": mqtt, "mqtt_unreachable_events": sum(r.get("event") == "mqtt_unreachable" for r in recs),
        "hook": hook, "escaped_children": len(escaped), "escaped_children_alive_at_end": still_running,
        "defects": summary.get("failed"), "wall_s": round(wall, 2),
        "sustained_fps": round((by["ok"] + by["error"]) / wall, 1),
    }
    res["passed"] = bool(
        res["accounted"] and res["each_frame_once"] and res["ran_to_end"]
        and res["corrupt_frames_logged_as_error"] == len(corrupt) and not res["errors_not_corrupt"]
        and res["model_reload_failures"] >= 1 and res["model_reloads"] >= 1 and res["sha_after_overwrite_differs"]
        and mqtt.get("published") == 0 and mqtt.get("unsent", 0) > 0 and res["mqtt_unreachable_events"] == 1
        and len(escaped) >= 1 and hook.get("run", 0) > len(escaped) and hook.get("timeouts") == 0
        and hook.get("run", 0) + hook.get("skipped", 0) == res["defects"])
    return res


def reuse_run(model, work, versions=150, slots=10):
    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig
    from tests.fixtures.watch import GREY, RED, run_in_thread, write_png

    cam, log = work / "reuse_cam", work / "reuse.jsonl"
    cam.mkdir()
    svc = Service(WatchConfig(model=str(model), source=str(cam), log=str(log), poll=0.01, settle_timeout=2.0,
                              quiet=True))
    t, box = run_in_thread(svc)
    t0 = time.monotonic()
    written, stalled = [], None
    for v in range(versions):
        path = cam / f"part_{v % slots}.png"  # the camera's 10 names, reused
        write_png(path, RED if v % 3 == 2 else GREY)
        written.append((str(path.resolve()), v % 3 == 2))
        deadline = time.monotonic() + 10
        while svc.counts["ok"] + svc.counts["errors"] < v + 1:  # one part on the belt at a time
            if time.monotonic() > deadline or not t.is_alive():
                stalled = f"version {v} of {path.name} never inspected"
                break
            time.sleep(0.002)
        if stalled:
            break
    svc.request_stop("soak done")
    t.join(15)
    wall = time.monotonic() - t0
    died = box.get("error") and f"{type(box['error']).__name__}: {box['error']}"
    items = [r for r in read_log(log) if "status" in r]
    by = {s: sum(r["status"] == s for r in items) for s in ("ok", "error", "dropped")}
    keys = [(r["source"], tuple(r.get("file_version") or ())) for r in items]
    verdict_ok = len(items) == len(written) and all(
        r["source"] == p and (r["verdict"] == "defective") == bad for r, (p, bad) in zip(items, written))
    res = {
        "mode": f"{versions} parts into {slots} reused file names", "sent": len(written), "log_items": len(items), **by,
        "accounted": by["ok"] + by["error"] + by["dropped"] == len(written) == versions,
        "each_frame_once": len(set(keys)) == len(keys) == len(written),
        "verdicts_follow_the_new_part": verdict_ok, "stalled": stalled, "died": died,
        "ran_to_end": not died and not t.is_alive(), "wall_s": round(wall, 2),
        "sustained_fps": round(len(items) / wall, 1),
    }
    res["passed"] = bool(res["accounted"] and res["each_frame_once"] and verdict_ok and not stalled
                         and res["ran_to_end"])
    return res


def logdisk_run(model, video, work, frames, size_kb=64, max_restarts=60):
    """The log on a tiny tmpfs (root: mount -t tmpfs). Returns a result that says why when it cannot mount."""
    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig
    from edge.watch.sources import VideoSource

    disk = work / "logdisk"
    disk.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(disk)],
                       capture_output=True, text=True)
    if m.returncode != 0:
        return {"mode": "log on a full disk", "passed": False,
                "not_run": f"mount -t tmpfs failed (needs root): {m.stderr.strip()}"}
    try:
        source = VideoSource(video)  # one camera across service restarts: frame numbers go on
        log = disk / "results.jsonl"
        runs, archived, died = [], [], None
        t0 = time.monotonic()
        while len(runs) < max_restarts:
            svc = Service(WatchConfig(model=str(model), source=str(video), log=str(log), log_max_mb=0, quiet=True),
                          source=source)
            summary, died = _alive_run(svc)
            runs.append(summary)
            part = work / f"logdisk_part{len(runs):02d}.jsonl"
            if log.exists():
                shutil.copy(log, part)  # the operator archives the full log and frees the disk
                archived.append(part)
                log.unlink()
            if died or not summary.get("log_error"):
                break
        wall = time.monotonic() - t0
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    items = [r for p in archived for r in read_log(p) if "status" in r]
    tot = {k: sum(s.get(k, 0) for s in runs) for k in ("sent", "ok", "errors", "dropped")}
    full_stops = sum(bool(s.get("log_error")) for s in runs)
    numbers = frame_numbers(items)
    res = {
        "mode": f"log on a {size_kb} KiB tmpfs; stop on full disk, archive, restart", "sent": tot["sent"],
        "log_items": len(items), "ok": tot["ok"], "error": tot["errors"], "dropped": tot["dropped"],
        "accounted": tot["ok"] + tot["errors"] + tot["dropped"] == tot["sent"] == frames,
        "each_frame_once": numbers == sorted(set(numbers)),
        "unlogged_lines_disk_full": tot["sent"] - len(items), "full_disk_stops": full_stops,
        "restarts": len(runs) - 1, "one_line_reason": all("No space left" in s["log_error"] for s in runs
                                                           if s.get("log_error")),
        "died": died, "ran_to_end": died is None and not runs[-1].get("log_error"), "wall_s": round(wall, 2),
        "sustained_fps": round((tot["ok"] + tot["errors"]) / wall, 1),
    }
    res["passed"] = bool(res["accounted"] and res["each_frame_once"] and full_stops >= 2 and res["one_line_reason"]
                         and res["ran_to_end"])
    return res
