"""Hook, metrics endpoint, drift gauge and systemd unit of the watch service."""
import json
import os
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner

from edge.watch.sinks.hook import HookRunner
from edge.watch.sinks.prometheus import Metrics
from edge.watch.stats import DriftTracker
from edge.watch.systemd import unit_text


def test_slow_hook_is_killed_at_timeout_without_blocking_and_counted(tmp_path):
    events = []
    hook = HookRunner("sleep 5", timeout=0.5, on_event=events.append)
    t0 = time.monotonic()
    assert hook.submit({"source": "a.png", "verdict": "defective"})
    assert hook.submit({"source": "b.png", "verdict": "defective"})
    assert time.monotonic() - t0 < 0.1  # submit never waits for the command
    hook.close(wait=5)
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 3.0  # two 0.5 s timeouts in series, not two 5 s sleeps
    assert hook.counts["timeouts"] == 2 and hook.counts["ok"] == 0
    assert [e["event"] for e in events] == ["hook_timeout", "hook_timeout"]
    assert events[0]["source"] == "a.png"


def test_hook_gets_result_as_env_and_json_stdin(tmp_path):
    out = tmp_path / "hook.out"
    cmd = f'{sys.executable} -c "import json,os,sys; d=json.load(sys.stdin); open(\'{out}\',\'w\').write(os.environ[\'EDGEINSPECT_SOURCE\']+\' \'+str(d[\'score\']))"'
    hook = HookRunner(cmd, timeout=10)
    hook.submit({"source": "p.png", "verdict": "defective", "score": 0.93})
    hook.close(wait=20)
    assert hook.counts["ok"] == 1
    assert out.read_text() == "p.png 0.93"


def test_failing_hook_and_full_queue_are_reported(tmp_path):
    events = []
    hook = HookRunner("exit 3", timeout=5, on_event=events.append, max_queue=1)
    results = [hook.submit({"source": f"{i}.png"}) for i in range(30)]
    hook.close(wait=20)
    assert hook.counts["failed"] >= 1 and hook.counts["failed"] + hook.counts["skipped"] == 30
    assert results.count(False) == hook.counts["skipped"]
    assert {"hook_error"} <= {e["event"] for e in events}


def _scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def _value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_metrics_endpoint_serves_counters_on_loopback():
    m = Metrics(0)
    try:
        assert m.server.server_address[0] == "127.0.0.1"
        m.passed.inc(3)
        m.failed.inc()
        m.dropped.inc(2)
        m.latency.observe(0.004)
        m.set_model("/m/model.tflite", {"model_version": "v7", "task": "classifier", "variant": "int8"})
        text = _scrape(m.port)
        assert _value(text, "edgeinspect_passed_total") == 3
        assert _value(text, "edgeinspect_failed_total") == 1
        assert _value(text, "edgeinspect_dropped_total") == 2
        assert _value(text, "edgeinspect_errors_total") == 0
        assert _value(text, "edgeinspect_inference_latency_seconds_count") == 1
        assert 'edgeinspect_model_info{path="/m/model.tflite",task="classifier",variant="int8",version="v7"} 1.0' in text
    finally:
        m.close()


def test_drift_compares_recent_window_with_first_window():
    d = DriftTracker(window=10)
    for _ in range(10):
        d.add(0.2)
    assert d.drift == pytest.approx(0.0)
    for _ in range(10):
        d.add(0.3)
    assert d.drift == pytest.approx(0.1)
    assert d.recent_mean == pytest.approx(0.3)
    d.reset()
    assert d.drift == 0.0


def test_install_service_prints_a_unit_with_absolute_paths_and_same_args(tmp_path, monkeypatch):
    from edge.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cam").mkdir()
    (tmp_path / "m.tflite").write_bytes(b"x")
    r = CliRunner().invoke(main, ["watch", "--model", "m.tflite", "--source", "cam", "--log", "r.jsonl",
                                  "--on-defect", "echo 100% $EDGEINSPECT_SOURCE", "--drop", "oldest",
                                  "--install-service", "--user", "pi"])
    assert r.exit_code == 0, r.output
    unit = r.output
    assert "User=pi" in unit and "Restart=on-failure" in unit
    assert f"WorkingDirectory={tmp_path.resolve()}" in unit
    exec_line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    assert f"--model {tmp_path.resolve() / 'm.tflite'}" in exec_line
    assert f"--source {tmp_path.resolve() / 'cam'}" in exec_line
    assert f"--log {tmp_path.resolve() / 'r.jsonl'}" in exec_line
    assert "--drop oldest" in exec_line and "--install-service" not in exec_line and "--user" not in exec_line
    assert "100%% $$EDGEINSPECT_SOURCE" in exec_line  # systemd would expand % and $
    assert exec_line.startswith(f"ExecStart={sys.executable} -m edge.cli watch")

    r = CliRunner().invoke(main, ["watch", "--model", "m.tflite", "--source", "cam", "--install-service",
                                  "--service-file", "w.service"])
    assert r.exit_code == 0 and (tmp_path / "w.service").read_text().startswith("# Written by")
    assert f"User={os.environ.get('USER') or __import__('getpass').getuser()}" in (tmp_path / "w.service").read_text()


def test_unit_text_is_a_valid_ini():
    import configparser

    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string(unit_text(["--model", "/m.tflite", "--source", "/cam"], user="pi", workdir="/"))
    assert cp["Service"]["User"] == "pi" and cp["Install"]["WantedBy"] == "multi-user.target"


def test_cli_defaults_are_the_config_defaults():
    from dataclasses import MISSING, fields

    from edge.watch.cli import watch
    from edge.watch.config import WatchConfig

    params = {p.name: p for p in watch.params}
    shared = [f for f in fields(WatchConfig) if f.default is not MISSING and f.name in params]
    assert len(shared) >= 20
    for f in shared:
        assert params[f.name].default == f.default, f.name


def test_every_sink_module_implements_the_protocol():
    import importlib

    from edge.watch.sinks import MODULES, Sink

    classes = {"rejects": "RejectStore", "prometheus": "Metrics", "mqtt": "MqttSink", "hook": "HookRunner",
               "opcua": "OpcUaServer", "modbus": "ModbusServer", "webhook": "WebhookSink", "ui": "LivePage"}
    assert set(MODULES) == set(classes)
    for mod, cls in classes.items():
        m = importlib.import_module(f"edge.watch.sinks.{mod}")
        assert callable(m.from_config)
        for attr in ("handle", "event", "close", "name", "before_log"):
            assert hasattr(getattr(m, cls), attr), (cls, attr)
    assert isinstance(HookRunner("true"), Sink)


def test_a_hook_that_leaves_a_child_behind_does_not_hang_the_worker():
    # issue 19.6: 'setsid ... &' escaped the process group and held the stderr pipe, so the worker waited
    # for it forever and later reject signals vanished uncounted.
    events = []
    hook = HookRunner("setsid sleep 6 & echo started", timeout=0.5, on_event=events.append)
    for i in range(3):
        assert hook.submit({"source": f"{i}.png", "verdict": "defective"})
    hook.close(wait=5)
    assert hook.counts == {"run": 3, "ok": 3, "failed": 0, "timeouts": 0, "skipped": 0}, (hook.counts, events)


def test_close_drains_within_its_budget_and_counts_the_rest_as_skipped():
    # issue 19.8: SIGTERM waited hook_timeout x queued hooks, past systemd's TimeoutStopSec.
    events = []
    hook = HookRunner("sleep 5", timeout=0.5, on_event=events.append)
    for i in range(10):
        hook.submit({"source": f"{i}.png"})
    t0 = time.monotonic()
    hook.close(wait=1.2)
    assert time.monotonic() - t0 < 4.5  # budget + one hook timeout, never 10 x 0.5 s
    c = hook.counts
    assert 1 <= c["run"] <= 4 and c["run"] + c["skipped"] == 10 and c["timeouts"] == c["run"]
    skipped = [e for e in events if e["event"] == "hook_skipped"]
    assert len(skipped) == c["skipped"] and "service stopping" in skipped[0]["error"]


def test_a_bad_metrics_host_is_blamed_not_the_port():
    from edge.watch.sinks.prometheus import MetricsError

    for host in ("192.0.2.1", "no-such-host.invalid"):  # TEST-NET-1: never an address of this machine
        with pytest.raises(MetricsError, match=f"--metrics-host {host}: not an address of this machine"):
            Metrics(0, host)


def test_require_optional_names_the_option_and_the_extra():
    from edge.errors import EdgeInspectError
    from edge.optional import require_optional

    assert require_optional("json", "watch", "--x").dumps(1) == "1"
    with pytest.raises(EdgeInspectError, match=r"^--mqtt needs paho-mqtt: pip install 'edgeinspect\[watch\]'$"):
        require_optional("no_such_module_xyz", "watch", "--mqtt", "paho-mqtt")
    with pytest.raises(EdgeInspectError, match=r"^video sources need OpenCV: pip install 'edgeinspect\[camera\]'$"):
        require_optional("no_such_module_xyz", "camera", "video sources", "OpenCV")


def _reject_item(tmp_path, name="part_7.jpg", data=b"\xff\xd8camera bytes\xff\xd9"):
    from types import SimpleNamespace

    src = tmp_path / name
    src.write_bytes(data)
    return SimpleNamespace(path=str(src), source_id=name, rgb=None), SimpleNamespace(verdict="defective",
                                                                                      anomaly_map=None)


def test_reject_copy_is_written_off_the_loop_and_named_in_the_record_first(tmp_path):
    from edge.watch.sinks.rejects import RejectStore

    store = RejectStore(tmp_path / "rejects")
    item, pred = _reject_item(tmp_path)
    rec = {}
    store.handle(rec, pred, item)
    os.remove(item.path)  # the source may be moved once its line is logged: the bytes were taken already
    store.close()
    out = rec["reject"]
    assert os.path.dirname(out) == str((tmp_path / "rejects").resolve()) and out.endswith("_part_7.jpg")
    with open(out, "rb") as fh:
        assert fh.read() == b"\xff\xd8camera bytes\xff\xd9"
    assert store.summary() == {"saved": 1, "failed": 0, "unsaved": 0, "overlays_missing": 0}


def test_a_failed_reject_write_is_a_sink_error_naming_the_file_and_the_writer_goes_on(tmp_path, monkeypatch):
    from edge.watch.sinks import rejects

    calls = {"n": 0}
    real = rejects.atomic_write_bytes

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(rejects, "atomic_write_bytes", flaky)
    events = []
    store = rejects.RejectStore(tmp_path / "rejects", on_event=lambda name, **f: events.append((name, f)))
    first, second = {}, {}
    for rec, name in ((first, "a.png"), (second, "b.png")):
        item, pred = _reject_item(tmp_path, name)
        store.handle(rec, pred, item)
    store.close()
    assert store.summary()["saved"] == 1 and store.summary()["failed"] == 1
    [(name, fields)] = events
    assert name == "sink_error" and fields["path"] == first["reject"] and "No space left" in fields["error"]
    assert not os.path.exists(first["reject"]) and os.path.exists(second["reject"])


def test_a_full_reject_queue_makes_the_loop_write_itself_instead_of_dropping(tmp_path, monkeypatch):
    import threading

    from edge.watch.sinks import rejects

    gate = threading.Event()
    real = rejects.atomic_write_bytes

    def slow(path, data):
        gate.wait(10)
        return real(path, data)

    monkeypatch.setattr(rejects, "QUEUE", 1)
    store = rejects.RejectStore(tmp_path / "rejects")
    monkeypatch.setattr(rejects, "atomic_write_bytes", slow)
    recs = []
    timer = threading.Timer(0.5, gate.set)  # the stalled disk comes back while the loop is writing
    timer.start()
    for i in range(4):
        item, pred = _reject_item(tmp_path, f"p{i}.png")
        recs.append({})
        store.handle(recs[-1], pred, item)
    store.close()
    timer.cancel()
    assert store.summary()["saved"] == 4
    assert all(os.path.exists(r["reject"]) for r in recs)
