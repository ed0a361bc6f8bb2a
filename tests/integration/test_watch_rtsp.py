"""``edgeinspect watch --source rtsp://`` against a real RTSP camera on 127.0.0.1 (tests/fixtures/rtsp.py:
ffmpeg encodes and packetizes, RTP interleaved over the RTSP connection) that loses power mid-run."""
import os
import signal
import subprocess
import sys
import time

from edge.watch.log import read_log
from tests.fixtures.common import ROOT
from tests.fixtures.rtsp import RtspCamera
from tests.fixtures.watch import free_port, make_video, wait_until




def _records(log):
    return list(read_log(log)) if log.exists() else []


def _items(log):
    return [r for r in _records(log) if "status" in r]


def _ok(log):
    return sum(r["status"] == "ok" for r in _items(log))


def _events(log, name):
    return [r for r in _records(log) if r.get("event") == name]


def test_rtsp_camera_that_loses_power_is_reconnected_with_backoff_and_every_frame_accounted(tmp_path,
                                                                                           tiny_classifier_tflite):
    clip = make_video(tmp_path / "line.avi", n=30)  # frame i is defective (red) when i % 3 == 2
    cam = RtspCamera(clip, free_port(), tmp_path).start()
    log = tmp_path / "rtsp.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "watch", "--model", str(tiny_classifier_tflite),
                             "--source", cam.url, "--log", str(log), "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _ok(log) >= 30, 30, "frames before the outage", proc=proc, step=0.05)
        cam.stop()  # power cut: encoder killed, connection reset, port closed
        wait_until(lambda: _events(log, "source_disconnected"), 15, "the disconnect", proc=proc, step=0.05)
        time.sleep(2.0)  # down for a while: reconnect attempts are refused, back-off grows
        before = _ok(log)
        downs_while_off = len(_events(log, "source_disconnected"))
        cam.start()  # the camera boots again on the same port
        wait_until(lambda: _events(log, "source_reconnected"), 20, "the reconnect", proc=proc, step=0.05)
        wait_until(lambda: _ok(log) >= before + 30, 20, "frames inspected after the outage", proc=proc, step=0.05)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        cam.stop()
    assert proc.returncode == 0, err[-2000:]
    assert cam.sessions >= 2  # two real RTSP PLAY sessions: before and after the outage
    items = _items(log)
    numbers = [int(r["source"].split(":")[1]) for r in items]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0  # each frame once, numbered on across the gap
    stop = _records(log)[-1]
    assert stop["event"] == "stop" and stop["reason"] == "SIGTERM"
    assert stop["sent"] == stop["ok"] + stop["errors"] + stop["dropped"] == len(items)  # every frame received
    downs = _events(log, "source_disconnected")
    assert downs_while_off >= 2 and stop["disconnects"] == len(downs) and stop["reconnects"] >= 1
    recs = _records(log)
    ups = [i for i, r in enumerate(recs) if r.get("event") == "source_reconnected"]
    back = max(ups, key=lambda i: recs[i]["down_s"])  # the camera's outage (not a hiccup on joining)
    outage = []  # the disconnects right before the reconnect: the camera off
    for r in reversed(recs[:back]):
        if r.get("event") != "source_disconnected":
            break
        outage.insert(0, r["retry_in_s"])
    assert len(outage) >= 2 and outage == sorted(outage) and outage[1] > outage[0]  # exponential back-off
    assert all("rtsp://127.0.0.1" in e["error"] for e in downs)
    assert recs[back]["down_s"] >= 2.0  # the gap is logged, with its length
    ok = [r for r in items if r["status"] == "ok"]
    assert len(ok) >= 60 and {r["verdict"] for r in ok} == {"good", "defective"}  # real decoded frames judged
    assert f"watch summary: {stop['sent']} received" in out
