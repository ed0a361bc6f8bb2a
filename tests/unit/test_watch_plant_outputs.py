"""The plant outputs' contracts without a model: register encoding, the documented maps, options, the unit."""
import sys

import pytest
from click.testing import CliRunner

from edge.watch.config import ConfigError, WatchConfig
from edge.watch.sinks.line_state import LineState
from edge.watch.sinks.modbus import BITS, N_REGISTERS, REGISTERS, bits, format_map, registers
from edge.watch.sinks.opcua import NODES, format_nodes
from edge.watch.sinks.webhook import WebhookError, WebhookSink
from tests.fixtures.common import ROOT
from tests.fixtures.watch import free_port


class _Model:
    meta = {"run": "exp3", "model_version": "v7", "threshold": 0.42}
    task, threshold, labels = "classifier", 0.42, ["good", "crack", "hole"]


def _rec(status="ok", verdict="good", score=0.1, type_=None, latency=2.0, source="/cam/p.png"):
    return {"status": status, "verdict": verdict if status == "ok" else None, "score": score if status == "ok" else None,
            "type": type_, "latency_ms": latency if status == "ok" else None, "source": source, "time": "T"}


def test_line_state_counts_follow_the_records():
    s = LineState(_Model(), "/m/model.tflite")
    for r in (_rec(), _rec(verdict="defective", score=0.9, type_="hole", latency=4.0), _rec("error"), _rec("dropped"),
              _rec(verdict="defective", score=0.7, type_="scratch", latency=6.0, source="video:12")):
        s.add(r)
    snap = s.snapshot()
    assert (snap["sequence"], snap["inspected"], snap["passed"], snap["defective_count"], snap["errors"],
            snap["dropped"], s.handled) == (4, 3, 1, 2, 1, 1, 5)
    assert snap["verdict"] == "defective" and snap["image"] == "video:12" and snap["latency_p50_ms"] == 4.0
    assert snap["type_index"] == 65535  # "scratch" is not one of the model's labels
    assert (snap["model_name"], snap["model_version"], snap["threshold"]) == ("exp3", "v7", 0.42)
    s.add(_rec(verdict="defective", type_="hole"))
    assert s.snapshot()["type_index"] == 2 and s.snapshot()["verdict_code"] == 2


def test_modbus_registers_encode_one_snapshot():
    s = LineState(_Model(), "m.tflite")
    s.add(_rec(verdict="defective", score=0.9876, type_="crack", latency=3.26))
    s.sequence, s.inspected, s.state = 70000 + 1, 123456789, "running"
    w = registers(s.snapshot())
    assert len(w) == N_REGISTERS and all(0 <= x <= 65535 for x in w)
    assert (w[0], w[1]) == (70001 >> 16, 70001 & 0xFFFF)  # high word first
    assert (w[5] << 16 | w[6]) == 123456789
    assert w[2:5] == [2, 988, 1] and w[15] == 33 and w[16] == 1 and w[17] == 420
    assert bits(s.snapshot()) == 0b101  # defective, not an error, running
    s.add(_rec("error"))
    s.state = "stopped"
    w = registers(s.snapshot())
    assert w[2] == 3 and w[3] == 0 and w[4] == 0 and w[16] == 2 and bits(s.snapshot()) == 0b010
    s.add(_rec(score=7.0))  # a score above 1 (a plain classifier's logit, say) saturates, never wraps
    assert registers(s.snapshot())[3] == 7000
    # The table covers every register exactly once.
    covered = sorted(a + i for a, n, _, _ in REGISTERS for i in range(n))
    assert covered == list(range(N_REGISTERS)) and [b for b, _, _ in BITS] == [0, 1, 2]


def test_readme_documents_the_node_list_and_the_register_map():
    readme = (ROOT / "README.md").read_text()
    assert format_nodes() in readme and format_map() in readme
    assert len(NODES) == len({n for n, *_ in NODES}) >= 17


def test_modbus_map_option_needs_no_model():
    from edge.cli import main

    r = CliRunner().invoke(main, ["watch", "--modbus-map"])
    assert r.exit_code == 0 and r.output.strip() == format_map()


def test_install_service_carries_the_plant_options_and_keeps_the_token_out_of_the_unit(tmp_path):
    from edge.cli import main
    from edge.watch.cli import watch

    (tmp_path / "cam").mkdir()
    unit = tmp_path / "w.service"
    args = ["watch", "-m", "m.tflite", "-s", str(tmp_path / "cam"), "--listen", "0.0.0.0", "--opcua-port", "4840",
            "--opcua-security", "server.pem", "--opcua-key", "server_key.pem", "--modbus-port", "502",
            "--webhook", "http://mes.local/r", "--webhook-on", "defective", "--ui-port", "8080",
            "--ui-token", "s3cr3t-token", "--install-service", "--service-file", str(unit)]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = unit.read_text()
    assert "s3cr3t-token" not in text and "EnvironmentFile=/etc/edgeinspect/watch.env" in text
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in text  # Modbus 502 without root
    assert "/etc/edgeinspect/watch.env" in r.output and "EDGEINSPECT_UI_TOKEN=s3cr3t-token" in r.output
    exec_args = next(line for line in text.splitlines() if line.startswith("ExecStart=")).split()[4:]
    cert = exec_args[exec_args.index("--opcua-security") + 1]
    assert cert.startswith("/") and cert.endswith("/server.pem")  # absolute: systemd has no useful cwd
    # The unit's command line parses back to the same settings (the token then comes from the environment).
    ctx = watch.make_context("watch", exec_args, default_map=None, obj=None)
    p = ctx.params
    assert (p["listen"], p["opcua_port"], p["modbus_port"], p["ui_port"], p["webhook"], p["webhook_on"]) == \
        ("0.0.0.0", 4840, 502, 8080, "http://mes.local/r", "defective")
    assert p["ui_token"] is None and p["opcua_key"].endswith("/server_key.pem")


def test_plant_options_are_checked_when_the_config_is_built():
    with pytest.raises(ConfigError, match="--modbus-port 5020: the same port as --opcua-port"):
        WatchConfig(model="m", source="s", opcua_port=5020, modbus_port=5020)
    with pytest.raises(ConfigError, match="--ui-token"):
        WatchConfig(model="m", source="s", ui_port=8080, listen="192.168.1.20")
    WatchConfig(model="m", source="s", ui_port=8080, listen="::1")  # loopback needs no token
    WatchConfig(model="m", source="s", ui_port=0, metrics_port=0)  # 0 = any free port, never a clash
    with pytest.raises(ConfigError, match="--webhook-on"):
        WatchConfig(model="m", source="s", webhook_on="sometimes")
    with pytest.raises(ConfigError, match="--webhook-retries"):
        WatchConfig(model="m", source="s", webhook_retries=-1)
    with pytest.raises(WebhookError, match="http:// or https://"):
        WebhookSink("ftp://mes.local/r")


def test_a_full_webhook_queue_drops_and_counts_and_never_blocks():
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/r", retries=0, timeout=0.5, max_queue=2)
    for i in range(20):  # nobody listens; the worker can hold one, the queue two, the rest are dropped at once
        sink.handle(_rec(source=f"p{i}.png"), None, None)
    sink.handle(_rec("dropped"), None, None)  # dropped frames are not posted
    sink.close(wait=1.0)
    c = sink.summary()
    assert c["queued"] == 20 == c["sent"] + c["failed"] + c["dropped"] + c["unsent"]
    assert c["dropped"] >= 17 and c["sent"] == 0


@pytest.mark.parametrize("module,cls,port_flag", [("asyncua", "OpcUaServer", "--opcua-port"),
                                                  ("pymodbus", "ModbusServer", "--modbus-port")])
def test_a_missing_plant_extra_is_one_line_naming_it(monkeypatch, module, cls, port_flag):
    import importlib

    from edge.errors import EdgeInspectError

    monkeypatch.setitem(sys.modules, module, None)  # import fails, as on a device without the extra
    mod = importlib.import_module("edge.watch.sinks." + ("opcua" if module == "asyncua" else "modbus"))
    with pytest.raises(EdgeInspectError) as err:
        getattr(mod, cls)(free_port())
    assert str(err.value) == f"{port_flag} needs {module}: pip install 'edgeinspect[plant]'"


def test_doctor_reports_the_plant_extras():
    from edge.doctor import collect, render

    r = collect()
    assert r["asyncua"]["installed"] and r["pymodbus"]["installed"]
    lines = "\n".join(render(r))
    assert "(watch --opcua-port)" in lines and "(watch --modbus-port)" in lines
