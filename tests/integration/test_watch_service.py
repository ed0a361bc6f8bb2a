"""The watch service end to end with real tiny TFLite models, real files, video and a real MQTT broker."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from edge.atomic import atomic_write_bytes
from edge.watch.log import read_log
from edge.watch.service import Service, WatchConfig
from edge.watch.sources import VideoSource
from tests.fixtures.common import ROOT
from tests.fixtures.watch import (GREY, RED, FaultySource, free_port, make_video, run_in_thread, stop_thread,
                                  wait_until, write_png)




def _items(log):
    return [r for r in read_log(log) if "status" in r]


def _events(log, name):
    return [r for r in read_log(log) if r.get("event") == name]


def _stop(svc, t, box):
    return stop_thread(svc, t, box, timeout=10)  # these services stop faster than the plant ones


def _metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(name)


def test_folder_service_partial_file_rejects_metrics_and_restart(tmp_path, tiny_classifier_tflite):
    cam, log, rej = tmp_path / "cam", tmp_path / "r.jsonl", tmp_path / "rejects"
    cam.mkdir()
    write_png(cam / "a_red.png", RED)
    cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(cam), log=str(log), rejects=str(rej),
                      metrics_port=0, poll=0.02, settle_timeout=0.5, quiet=True)
    svc = Service(cfg)
    t, box = run_in_thread(svc)
    wait_until(lambda: len(_items(log)) == 1, what="first file")
    # A camera writing a file slowly: half a PNG must not be inspected.
    full = write_png(tmp_path / "b.png", GREY, size=(96, 128)).read_bytes()
    (cam / "b_grey.png").write_bytes(full[: len(full) // 2])
    time.sleep(0.3)  # many polls with a stable, undecodable size (below settle-timeout)
    assert len(_items(log)) == 1
    (cam / "b_grey.png").write_bytes(full)
    (cam / "c_bad.png").write_bytes(b"not a png at all")
    wait_until(lambda: len(_items(log)) == 3, what="b and c")
    port = svc.sinks.get("metrics").port
    assert (_metric(port, "edgeinspect_passed_total"), _metric(port, "edgeinspect_failed_total"),
            _metric(port, "edgeinspect_errors_total")) == (1, 1, 1)
    summary = _stop(svc, t, box)
    recs = {os.path.basename(r["source"]): r for r in _items(log)}
    assert len(_items(log)) == 3  # b_grey inspected exactly once
    assert recs["a_red.png"]["verdict"] == "defective" and recs["a_red.png"]["type"] in ("crack", "hole")
    assert recs["b_grey.png"]["verdict"] == "good" and recs["b_grey.png"]["e2e_ms"] >= recs["b_grey.png"]["latency_ms"]
    assert recs["c_bad.png"]["status"] == "error" and "c_bad.png" in recs["c_bad.png"]["error"]
    assert os.path.exists(recs["a_red.png"]["reject"]) and len([f for f in os.listdir(rej) if (rej / f).is_file()]) == 1
    assert sorted(f for f in os.listdir(rej) if (rej / f).is_dir()) == ["confirmed_defect", "confirmed_good"]
    assert summary["passed"] == 1 and summary["failed"] == 1 and summary["errors"] == 1
    assert _events(log, "stop")[-1]["reason"] == "test"

    # Restart on the same log: nothing is inspected twice, the new file is.
    write_png(cam / "d_grey.png", GREY)
    svc = Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(cam), log=str(log), poll=0.02,
                              quiet=True, max_items=1))
    t, box = run_in_thread(svc)
    t.join(10)
    assert box["summary"]["inspected"] == 1
    sources = [os.path.basename(r["source"]) for r in _items(log)]
    assert sorted(sources) == ["a_red.png", "b_grey.png", "c_bad.png", "d_grey.png"]


def test_video_with_corrupt_frame_and_disconnect_accounts_for_every_frame(tmp_path, tiny_classifier_tflite, watch_video):
    log = tmp_path / "v.jsonl"
    src = FaultySource(VideoSource(watch_video), corrupt={5}, disconnect_at={10: 3})
    cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(watch_video), log=str(log), quiet=True,
                      retry_initial=0.02, retry_max=0.05)
    summary = Service(cfg, source=src).run(install_signals=False)
    items = _items(log)
    assert [r["source"] for r in items] == [f"video:{i}" for i in range(30)]  # in order, once each
    assert items[5]["status"] == "error" and "frame" in items[5]["error"]
    ok = [r for r in items if r["status"] == "ok"]
    assert all((r["verdict"] == "defective") == (int(r["source"].split(":")[1]) % 3 == 2) for r in ok)
    assert len(_events(log, "source_disconnected")) == 3 and len(_events(log, "source_reconnected")) == 1
    retries = [e["retry_in_s"] for e in _events(log, "source_disconnected")]
    assert retries == sorted(retries) and retries[-1] <= 0.05  # exponential, capped
    assert src.opens >= 2  # the reader was really reopened and resumed at frame 10
    assert summary["sent"] == 30 == summary["ok"] + summary["errors"] + summary["dropped"]
    assert summary["disconnects"] == 3 and summary["errors"] == 1


class _Slow:
    """The real model, 10 ms slower per frame (a Pi 3 on a 30 fps camera)."""

    def __init__(self, model):
        self._m = model

    def __getattr__(self, name):
        return getattr(self._m, name)

    def predict_array(self, rgb):
        time.sleep(0.01)
        return self._m.predict_array(rgb)


def test_drop_oldest_logs_every_dropped_frame(tmp_path, tiny_classifier_tflite):
    video = make_video(tmp_path / "fast.avi", n=60)
    log = tmp_path / "d.jsonl"
    inner = VideoSource(video)
    inner.live = True  # behave like a camera: it does not wait for us
    svc = Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(video), log=str(log), queue=2,
                              quiet=True), source=inner)
    svc.model = _Slow(svc.model)
    assert svc.drop == "oldest"
    summary = svc.run(install_signals=False)
    items = _items(log)
    assert sorted(int(r["source"].split(":")[1]) for r in items) == list(range(60))  # each frame exactly once
    dropped = [r for r in items if r["status"] == "dropped"]
    assert len(dropped) == summary["dropped"] > 0
    assert summary["sent"] == 60 == summary["ok"] + summary["errors"] + summary["dropped"]
    assert items[-1]["source"] != "video:0"


def test_model_swap_mid_run_and_broken_replacement_keeps_old_model(tmp_path, tiny_models_dir):
    cam, log, model = tmp_path / "cam", tmp_path / "s.jsonl", tmp_path / "model.tflite"
    cam.mkdir()
    shutil.copy(tiny_models_dir / "tiny_classifier_int8.tflite", model)
    svc = Service(WatchConfig(model=str(model), source=str(cam), log=str(log), poll=0.02, quiet=True,
                              reload_interval=0.05))
    first_sha = svc.model_sha
    t, box = run_in_thread(svc)
    for i in range(3):
        write_png(cam / f"a{i}.png", RED)
    wait_until(lambda: len(_items(log)) == 3, what="first batch")
    # 'edgeinspect export' replaces the file by atomic rename
    atomic_write_bytes(model, (tiny_models_dir / "tiny_classifier_fp32.tflite").read_bytes())
    wait_until(lambda: _events(log, "model_reloaded"), what="reload")
    for i in range(3):
        write_png(cam / f"b{i}.png", RED)
    wait_until(lambda: len(_items(log)) == 6, what="second batch")
    atomic_write_bytes(model, b"TFL3 this is not a model")
    failed = wait_until(lambda: _events(log, "model_reload_failed"), what="reload failure")
    assert "model.tflite" in failed[0]["error"]
    write_png(cam / "c0.png", GREY)
    wait_until(lambda: len(_items(log)) == 7, what="after broken model")
    summary = _stop(svc, t, box)
    shas = [r["model_sha"] for r in _items(log)]
    second_sha = _events(log, "model_reloaded")[0]["model_sha"]
    assert second_sha != first_sha
    assert shas == [first_sha] * 3 + [second_sha] * 4  # no item lost, none judged by a broken model
    assert all(r["status"] == "ok" for r in _items(log))
    assert summary["reloads"] == 1 and summary["reload_failures"] == 1


def test_mqtt_events_reach_a_real_broker(tmp_path, tiny_classifier_tflite, watch_video, mosquitto_broker):
    import paho.mqtt.client as mqtt

    host, port = mosquitto_broker
    got, ready = [], threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, rc, p: (c.subscribe("test/line1/#", qos=1), None)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    sub.on_message = lambda c, u, msg: got.append((msg.topic, msg.payload.decode()))
    sub.connect(host, port)
    sub.loop_start()
    try:
        assert ready.wait(5)
        cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(watch_video), log=str(tmp_path / "m.jsonl"),
                          mqtt=f"{host}:{port}", topic="test/line1", quiet=True)
        svc = Service(cfg)
        svc.sinks.get("mqtt").connected.wait(5)
        summary = svc.run(install_signals=False)
        wait_until(lambda: len([m for m in got if m[0] == "test/line1"]) == 30, what="30 MQTT events")
    finally:
        sub.loop_stop()
        sub.disconnect()
    events = [json.loads(p) for tp, p in got if tp == "test/line1"]
    assert sorted(e["source"] for e in events) == sorted(f"video:{i}" for i in range(30))
    assert sum(e["verdict"] == "defective" for e in events) == summary["failed"] == 10
    assert ("test/line1/status", "online") in got
    assert summary["mqtt"]["published"] == 30


def test_broker_down_never_blocks_or_stops_inspection(tmp_path, tiny_classifier_tflite, watch_video):
    cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(watch_video), log=str(tmp_path / "x.jsonl"),
                      mqtt=f"127.0.0.1:{free_port()}", quiet=True)
    t0 = time.monotonic()
    summary = Service(cfg).run(install_signals=False)
    assert summary["ok"] == 30 and time.monotonic() - t0 < 10


def test_hook_timeouts_do_not_slow_the_loop(tmp_path, tiny_classifier_tflite):
    video = make_video(tmp_path / "h.avi", n=6)  # frames 2 and 5 are defective
    log = tmp_path / "h.jsonl"
    cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(video), log=str(log), on_defect="sleep 5",
                      hook_timeout=0.5, metrics_port=0, quiet=True)
    svc = Service(cfg)
    t0 = time.monotonic()
    summary = svc.run(install_signals=False)
    assert time.monotonic() - t0 < 4  # two 0.5 s timeouts, never 2 x 5 s
    assert max(r["e2e_ms"] for r in _items(log)) < 400  # the loop never waited for the hook
    assert summary["hook"]["timeouts"] == 2 and len(_events(log, "hook_timeout")) == 2


def test_sigterm_stops_cleanly_with_summary(tmp_path, tiny_classifier_tflite):
    cam, log = tmp_path / "cam", tmp_path / "t.jsonl"
    cam.mkdir()
    write_png(cam / "a.png", RED)
    write_png(cam / "b.png", GREY)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "watch", "--model", str(tiny_classifier_tflite),
                             "--source", str(cam), "--log", str(log), "--poll", "0.05", "--status-every", "0.2"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: log.exists() and len(_items(log)) == 2, timeout=30, what="two results")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "watch summary: 2 received, 2 inspected (1 pass, 1 fail)" in out
    assert "p50/p95" in out
    assert "watch folder:" in err  # periodic status line when stderr is not a terminal
    stop = list(read_log(log))[-1]
    assert stop["event"] == "stop" and stop["reason"] == "SIGTERM" and stop["ok"] == 2


def test_mqtt_sink_reconnects_and_delivers_what_was_queued_while_the_broker_was_down(tmp_path):
    import paho.mqtt.client as mqtt

    from edge.watch.sinks.mqtt import MqttSink
    from tests.fixtures.watch import start_mosquitto

    port = free_port()
    sink = MqttSink(f"127.0.0.1:{port}", "test/late")
    broker = None
    try:
        for i in range(3):  # the broker is down: publish returns at once, messages wait in memory
            t0 = time.monotonic()
            assert sink.publish({"source": f"f{i}", "verdict": "good"})
            assert time.monotonic() - t0 < 0.1
        broker = start_mosquitto(port, tmp_path)
        got, ready = [], threading.Event()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("test/late", qos=1)
        sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
        sub.on_message = lambda c, u, msg: got.append(json.loads(msg.payload)["source"])
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        assert ready.wait(5)
        wait_until(lambda: len(got) == 3, timeout=15, what="queued messages after reconnect")
        assert sorted(got) == ["f0", "f1", "f2"] and sink.connected.is_set()
        sub.loop_stop()
        sub.disconnect()
    finally:
        sink.close()
        if broker is not None:
            broker.terminate()
            broker.wait(5)


def test_anomaly_reject_gets_a_heat_map_overlay(tmp_path, tiny_anomaly_tflite):
    import numpy as np
    from PIL import Image

    cam, rej = tmp_path / "cam", tmp_path / "rej"
    cam.mkdir()
    img = np.full((64, 64, 3), 60, np.uint8)
    img[8:24, 8:24] = 250  # a bright patch: anomalous for the tiny anomaly model
    Image.fromarray(img).save(cam / "spot.png")
    write_png(cam / "plain.png", (60, 60, 60))
    svc = Service(WatchConfig(model=str(tiny_anomaly_tflite), source=str(cam), rejects=str(rej), poll=0.02,
                              quiet=True, max_items=2))
    summary = svc.run(install_signals=False)
    assert summary["failed"] == 1 and summary["passed"] == 1 and summary["reject_errors"] == 0
    files = sorted(f for f in os.listdir(rej) if (rej / f).is_file())
    assert len(files) == 2 and files[0].endswith("_spot.png") and files[1].endswith("_spot_overlay.png")
    overlay = np.asarray(Image.open(rej / files[1]))
    assert overlay.shape == (64, 64, 3) and not np.array_equal(overlay, img)


class _Broken:
    """A sink whose every call fails, like a PLC driver that lost its socket."""

    def __init__(self, name, before_log=False):
        self.name, self.before_log, self.calls = name, before_log, 0

    def handle(self, record, prediction, item):
        self.calls += 1
        raise ConnectionError(f"{self.name} is down")

    def event(self, record):
        raise RuntimeError("event failed")

    def close(self):
        raise RuntimeError("close failed")


def test_a_failing_sink_is_logged_and_counted_and_never_costs_a_log_line(tmp_path, tiny_classifier_tflite, watch_video):
    log = tmp_path / "s.jsonl"
    svc = Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(watch_video), log=str(log), quiet=True))
    early, late = _Broken("plc", before_log=True), _Broken("opcua")
    svc.sinks.sinks += [early, late]
    summary = svc.run(install_signals=False)
    items = _items(log)
    assert [r["source"] for r in items] == [f"video:{i}" for i in range(30)]  # every line is there
    assert all(r["status"] == "ok" and "plc is down" in r["plc_error"] for r in items)
    assert early.calls == late.calls == 30
    errors = _events(log, "sink_error")
    assert {e["sink"] for e in errors} == {"plc", "opcua"}
    assert sum(e["during"] == "handle" and e["sink"] == "opcua" for e in errors) == 30
    assert summary["sink_errors"]["plc"] == summary["sink_errors"]["opcua"] >= 30 + 1  # handle + start event
    assert summary["ok"] == 30 and "output errors: opcua" in __import__("edge.watch.status", fromlist=["x"]).format_summary(summary)


def test_missing_overlay_support_is_logged_once_and_counted(tmp_path, tiny_anomaly_tflite, monkeypatch):
    import numpy as np
    from PIL import Image

    cam, rej, log = tmp_path / "cam", tmp_path / "rej", tmp_path / "o.jsonl"
    cam.mkdir()
    for i in range(2):
        img = np.full((64, 64, 3), 60, np.uint8)
        img[8:24, 8 + i:24 + i] = 250
        Image.fromarray(img).save(cam / f"spot{i}.png")
    monkeypatch.setitem(sys.modules, "edge.overlay", None)  # import edge.overlay -> ImportError
    svc = Service(WatchConfig(model=str(tiny_anomaly_tflite), source=str(cam), rejects=str(rej), log=str(log),
                              poll=0.02, quiet=True, max_items=2))
    summary = svc.run(install_signals=False)
    assert summary["failed"] == 2 and summary["rejects"] == 2 and summary["reject_overlays_missing"] == 2
    assert len(_events(log, "reject_overlay_unavailable")) == 1
    files = sorted(f for f in os.listdir(rej) if (rej / f).is_file())
    assert files[0].endswith("_spot0.png") and len(files) == 2


def _alive(proc, pred):
    """pred() for _wait, failing at once (with the exit code) when the watch process died."""
    def check():
        assert proc.poll() is None, f"watch died with exit code {proc.returncode}: {proc.stderr.read()[-1500:]}"
        return pred()
    return check


def _watch_proc(tmp_path, model, cam, log, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "watch", "--model", str(model), "--source", str(cam),
                             "--log", str(log), "--poll", "0.05", "-q", *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_fp32_model_truncated_and_overwritten_in_place_mid_run_keeps_the_service_alive(tmp_path, tiny_models_dir):
    # issue 19.1: the interpreter mmapped the file, so ': > model.tflite' killed watch with SIGBUS.
    cam, log, model = tmp_path / "cam", tmp_path / "t.jsonl", tmp_path / "model.tflite"
    cam.mkdir()
    shutil.copy(tiny_models_dir / "tiny_classifier_fp32.tflite", model)
    proc = _watch_proc(tmp_path, model, cam, log)
    try:
        write_png(cam / "a0.png", RED)
        wait_until(lambda: log.exists() and len(_items(log)) == 1, timeout=30, what="first result")
        with open(model, "r+b") as f:
            f.truncate(0)  # ': > model.tflite'
        for i in range(1, 4):
            write_png(cam / f"a{i}.png", RED if i % 2 else GREY)
            time.sleep(0.15)
        wait_until(_alive(proc, lambda: len(_items(log)) == 4), timeout=20, what="results after truncation")
        wait_until(_alive(proc, lambda: _events(log, "model_reload_failed")), timeout=10, what="reload failure")
        with open(model, "wb") as f:  # an scp-style overwrite of the same inode with another model
            f.write((tiny_models_dir / "tiny_classifier_int8.tflite").read_bytes())
        wait_until(_alive(proc, lambda: _events(log, "model_reloaded")), timeout=10, what="reload of the overwritten model")
        write_png(cam / "b0.png", RED)
        wait_until(_alive(proc, lambda: len(_items(log)) == 5), timeout=20, what="result from the new model")
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    items = _items(log)
    assert all(r["status"] == "ok" for r in items)
    assert [r["verdict"] for r in items[:4]] == ["defective", "defective", "good", "defective"]
    assert items[0]["model_sha"] == items[3]["model_sha"] != items[4]["model_sha"]
    assert list(read_log(log))[-1]["event"] == "stop"


def test_mqtt_without_a_broker_says_so_and_counts_nothing_as_published(tmp_path, tiny_classifier_tflite, watch_video):
    # issue 19.11: no warning, and the stop record said 'published 30, failed 0' with nothing delivered.
    from edge.watch.status import format_summary

    log = tmp_path / "x.jsonl"
    cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(watch_video), log=str(log),
                      mqtt=f"127.0.0.1:{free_port()}", quiet=True)
    svc = Service(cfg)
    wait_until(lambda: _events(log, "mqtt_unreachable"), what="the unreachable-broker event")
    summary = svc.run(install_signals=False)
    assert summary["ok"] == 30
    assert summary["mqtt"] == {"published": 0, "failed": 0, "unsent": 30}
    assert len(_events(log, "mqtt_unreachable")) == 1 and "127.0.0.1" in _events(log, "mqtt_unreachable")[0]["error"]
    assert "mqtt: 0 delivered, 30 not delivered" in format_summary(summary)


def test_network_stream_that_dies_mid_run_is_reconnected_and_every_frame_accounted(tmp_path, tiny_classifier_tflite):
    # A network camera (HTTP MJPEG on 127.0.0.1; RTSP: tests/integration/test_watch_rtsp.py) loses power
    # mid-run and comes back: the service retries with back-off, logs the gap, never dies.
    from tests.fixtures.watch import MjpegServer

    cam = MjpegServer(free_port()).start()
    log = tmp_path / "n.jsonl"
    svc = Service(WatchConfig(model=str(tiny_classifier_tflite), source=cam.url, log=str(log), quiet=True,
                              retry_initial=0.1, retry_max=0.4))
    assert svc.drop == "oldest"  # a live source: the newest frame matters
    t, box = run_in_thread(svc)
    try:
        wait_until(lambda: len(_items(log)) >= 15, what="frames before the outage")
        cam.stop()
        wait_until(lambda: _events(log, "source_disconnected"), what="the disconnect")
        time.sleep(0.8)  # down for a while: several reconnect attempts fail
        before = len(_items(log))
        cam.start()
        wait_until(lambda: _events(log, "source_reconnected"), what="the reconnect")
        wait_until(lambda: len(_items(log)) >= before + 15, what="frames after the outage")
        assert t.is_alive() and "error" not in box
    finally:
        summary = _stop(svc, t, box)
        cam.stop()
    items = _items(log)
    numbers = [int(r["source"].split(":")[1]) for r in items]
    assert numbers == sorted(set(numbers))  # each frame once, numbered on across the reconnect
    assert summary["sent"] == summary["ok"] + summary["errors"] + summary["dropped"] == len(items)
    downs = _events(log, "source_disconnected")
    assert len(downs) >= 2 and summary["reconnects"] >= 1
    retries = [e["retry_in_s"] for e in downs]
    assert retries == sorted(retries) and retries[-1] <= 0.4  # exponential back-off, capped
    assert _events(log, "source_reconnected")[0]["down_s"] >= 0.5
    ok = [r for r in items if r["status"] == "ok"]
    assert {r["verdict"] for r in ok} == {"good", "defective"}
