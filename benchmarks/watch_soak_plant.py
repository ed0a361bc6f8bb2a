"""The issue-15 soak for ``benchmarks/watch_soak.py``: the same camera-paced clip twice on the real service,
without sinks and with every sink on, each output read by a real client while frames flow.

With sinks: ``--rejects``, Prometheus ``/metrics``, MQTT to a local mosquitto (when installed),
``--on-defect true``, OPC UA (an asyncua client subscribed to Sequence), Modbus TCP (a pymodbus
client polling the registers at 10 Hz), a webhook to a local receiver, and the live page (one SSE
stream plus a poller that fetches the state and the new thumbnails/heat maps once a second, like
an open browser tab). Checks: every frame accounted for in the log; each sink's count equals the
log's, or its losses are counted; RSS growth first -> last quarter <= 10 %; e2e p95 with sinks
<= 1.2x without. The clients run in a child process, as a PLC, a SCADA and a browser would: in the
service's process their threads competed for the GIL with the inspection loop.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.request

import numpy as np

E2E_P95_RATIO = 1.2
RSS_GROWTH_PCT = 10.0


class _Clients:
    """The plant's side: real clients of the OPC UA, Modbus and page servers, each on its own thread."""

    def __init__(self, opcua_url, modbus_port, ui_base):
        self.stop = threading.Event()
        self.opcua_notifications, self.opcua_last = 0, None
        self.modbus_reads, self.modbus_backwards, self.modbus_errors, self.modbus_last = 0, 0, 0, 0
        self.sse_events, self.ui_polls, self.ui_images, self.ui_errors = 0, 0, 0, 0
        self.errors = []
        self.threads = [threading.Thread(target=f, daemon=True) for f in
                        (lambda: asyncio.run(self._opcua(opcua_url)), lambda: self._modbus(modbus_port),
                         lambda: self._sse(ui_base), lambda: self._poll(ui_base))]
        for t in self.threads:
            t.start()

    async def _opcua(self, url):
        from asyncua import Client

        owner = self

        class Handler:
            def datachange_notification(self, node, val, data):
                owner.opcua_notifications += 1
                owner.opcua_last = val

        try:
            async with Client(url, timeout=10) as c:
                ns = await c.get_namespace_index("urn:edgeinspect:watch")
                sub = await c.create_subscription(50, Handler())
                await sub.subscribe_data_change(c.get_node(f"ns={ns};s=edgeinspect.Sequence"))
                while not self.stop.is_set():
                    await asyncio.sleep(0.1)
        except Exception as exc:  # noqa: BLE001 - the service closing its server ends the client too
            if not self.stop.is_set():
                self.errors.append(f"opcua client: {type(exc).__name__}: {exc}")

    def _modbus(self, port):
        from pymodbus.client import ModbusTcpClient

        c = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
        c.connect()
        while not self.stop.wait(0.1):
            try:
                r = c.read_input_registers(0, count=18)
                if r.isError():
                    self.modbus_errors += 1
                    continue
                seq = (r.registers[0] << 16) | r.registers[1]
                self.modbus_backwards += seq < self.modbus_last
                self.modbus_last = seq
                self.modbus_reads += 1
            except Exception:  # noqa: BLE001 - counted; the server goes away at the end
                self.modbus_errors += 1
        c.close()

    def _sse(self, base):
        try:
            with urllib.request.urlopen(base + "events", timeout=30) as r:
                for line in r:
                    if self.stop.is_set():
                        return
                    if line.startswith(b"data: "):
                        self.sse_events += 1
        except Exception as exc:  # noqa: BLE001
            if not self.stop.is_set():
                self.errors.append(f"sse: {type(exc).__name__}: {exc}")

    def _poll(self, base):
        seen = set()
        while not self.stop.wait(1.0):
            try:
                with urllib.request.urlopen(base + "api/state", timeout=5) as r:
                    state = json.loads(r.read())
                self.ui_polls += 1
                for e in state["recent"] + state["rejects"]:
                    for key in ("thumb", "heat"):
                        if e.get(key) and e[key] not in seen:
                            seen.add(e[key])
                            try:
                                with urllib.request.urlopen(base + e[key], timeout=5) as r:
                                    r.read()
                                self.ui_images += 1
                            except Exception:  # noqa: BLE001 - gone from the page already (404): normal
                                self.ui_errors += 1
            except Exception:  # noqa: BLE001
                self.ui_errors += 1

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    COUNTERS = ("opcua_notifications", "opcua_last", "modbus_reads", "modbus_backwards", "modbus_errors",
                "modbus_last", "sse_events", "ui_polls", "ui_images", "ui_errors", "errors")


def _client_process(args, rx_port, ready, stop, out):
    from tests.fixtures.plant import WebhookReceiver

    rx = WebhookReceiver(rx_port).start()  # the webhook's receiver, before the first frame is posted
    ready.set()
    clients = _Clients(*args)
    stop.wait()
    clients.close()
    rx.stop()
    out.put({**{k: getattr(clients, k) for k in _Clients.COUNTERS}, "webhook_received": len(rx.posts)})


class _RemoteClients:
    """The clients and the webhook receiver in their own process, as a PLC, a SCADA, a browser and an
    MES are: in the service's process their Python threads took the GIL from the inspection loop and
    counted against its latency (all outputs on: e2e p95 23.7 ms vs 1.7 ms without)."""

    def __init__(self, args, rx_port):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._stop, self._out, ready = ctx.Event(), ctx.Queue(), ctx.Event()
        self._proc = ctx.Process(target=_client_process, args=(args, rx_port, ready, self._stop, self._out),
                                 daemon=True)
        self._proc.start()
        if not ready.wait(60):
            raise RuntimeError("the soak's client process did not start within 60 s")

    def close(self):
        self._stop.set()
        try:
            counts = self._out.get(timeout=30)
        except Exception:  # noqa: BLE001 - a dead client process: every count reads as none seen
            counts = {k: ([] if k == "errors" else 0) for k in _Clients.COUNTERS + ("webhook_received",)}
            counts["errors"] = ["client process gave no counts"]
        self._proc.join(10)
        self.__dict__.update(counts)


def _p95(values):
    return round(float(np.percentile(values, 95)), 2) if values else None


def plant_run(name, video, model_src, work, frames, fps, sinks, mqtt=None, without=()):
    from benchmarks.timing import proc_status_mb
    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig
    from edge.watch.sources import VideoSource
    from tests.fixtures.watch import free_port

    log = work / f"{name}.jsonl"
    src = VideoSource(video, realtime_fps=fps)
    src.live = True  # paced like a camera: it does not wait for inference
    opts = {}
    rx_port = free_port()
    if sinks:
        opts = dict(rejects=str(work / f"{name}_rejects"), metrics_port=free_port(), on_defect="true",
                    opcua_port=free_port(), modbus_port=free_port(), webhook=f"http://127.0.0.1:{rx_port}/results",
                    ui_port=free_port())
        if mqtt:
            opts["mqtt"] = mqtt
        for k in without:  # experiments: which sink costs what
            opts.pop(k, None)
    cfg = WatchConfig(model=str(model_src), source=str(video), log=str(log), log_max_mb=1.0, log_keep=50,
                      drop="oldest", queue=8, quiet=True, **opts)
    svc = Service(cfg, source=src)
    sink = {s.name: s for s in svc.sinks}
    clients = None
    if sinks:
        clients = _RemoteClients((sink["opcua"].url, sink["modbus"].port, f"http://127.0.0.1:{sink['ui'].port}/"),
                                 rx_port)
    samples, done = [], threading.Event()

    def sampler():
        while not done.is_set():
            samples.append((svc.counts["sent"], proc_status_mb("VmRSS") or float("nan")))
            done.wait(0.1)

    th = threading.Thread(target=sampler, daemon=True)
    load_start = os.getloadavg()[0]
    t0 = time.monotonic()
    th.start()
    died = None
    try:
        summary = svc.run(install_signals=False)
    except BaseException as exc:  # noqa: BLE001 - the whole point: this must never happen
        died, summary = f"{type(exc).__name__}: {exc}", {}
    wall = time.monotonic() - t0
    done.set()
    th.join()
    if clients:
        clients.close()

    recs = list(read_log(log))
    items = [r for r in recs if "status" in r]
    by = {s: sum(r["status"] == s for r in items) for s in ("ok", "error", "dropped")}
    judged = by["ok"] + by["error"]
    defective = sum(r.get("verdict") == "defective" for r in items)
    e2e = np.array([r["e2e_ms"] for r in items if r["status"] == "ok"], np.float64)
    q = max(1, frames // 4)
    first = [m for n, m in samples if q // 2 <= n < q] or [m for _, m in samples[: max(1, len(samples) // 4)]]
    last = [m for n, m in samples if n >= frames - q] or [m for _, m in samples[-max(1, len(samples) // 4):]]
    rss_first, rss_last = float(np.median(first)), float(np.median(last))
    res = {
        "mode": f"paced {fps:g} fps, drop=oldest, " + ("all sinks on" if sinks else "no sinks"),
        "sent": summary.get("sent"), "log_items": len(items), **by,
        "defective": defective,
        "accounted": judged + by["dropped"] == summary.get("sent") == frames,
        "each_frame_once": sorted(int(r["source"].split(":")[1]) for r in items) == list(range(frames)),
        "died": died, "ran_to_end": died is None and summary.get("sent") == frames,
        "rss_mb_first_quarter": round(rss_first, 1), "rss_mb_last_quarter": round(rss_last, 1),
        "rss_growth_pct": round(100 * (rss_last - rss_first) / rss_first, 2),
        "e2e_ms_p50": round(float(np.percentile(e2e, 50)), 2) if e2e.size else None,
        "e2e_ms_p95": round(float(np.percentile(e2e, 95)), 2) if e2e.size else None,
        "e2e_durable_ms_p95": (summary.get("e2e_durable_ms") or {}).get("p95"),
        # Split by verdict: --rejects saves (and fsyncs) each defective image before its line is logged.
        "e2e_ms_p95_good": _p95([r["e2e_ms"] for r in items if r.get("verdict") == "good"]),
        "e2e_ms_p95_defective": _p95([r["e2e_ms"] for r in items if r.get("verdict") == "defective"]),
        "sustained_fps": round(judged / wall, 1), "wall_s": round(wall, 2),
        # The machine is shared: its load says how much of a stall (dropped frames, p95) is other work.
        "loadavg_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "dropped_frames": [int(r["source"].split(":")[1]) for r in items if r["status"] == "dropped"][:50],
        "sink_errors": summary.get("sink_errors") or {},
    }
    checks = {"accounted": res["accounted"], "each_frame_once": res["each_frame_once"],
              "ran_to_end": res["ran_to_end"], "rss_growth_ok": res["rss_growth_pct"] <= RSS_GROWTH_PCT,
              "no_sink_errors": not res["sink_errors"]}
    if sinks:
        o, m, w, u = summary["opcua"], summary["modbus"], summary["webhook"], summary["ui"]
        hook, mq = summary.get("hook") or {}, summary.get("mqtt")
        late = int(fps * 0.2) + 1  # frames that can arrive within one client sampling period before the stop
        metrics = sink["metrics"].registry
        prom = {k: metrics.get_sample_value(f"edgeinspect_{k}_total") for k in ("passed", "failed", "errors",
                                                                                 "dropped")}
        res["sinks"] = {
            "opcua": {**o, "client_notifications": clients.opcua_notifications, "client_last_sequence": clients.opcua_last},
            "modbus": {**m, "client_reads": clients.modbus_reads, "client_last_sequence": clients.modbus_last,
                       "client_saw_sequence_go_back": clients.modbus_backwards, "client_errors": clients.modbus_errors},
            "webhook": {**w, "receiver_got": clients.webhook_received},
            "ui": {**u, "sse_events": clients.sse_events, "polls": clients.ui_polls, "images_fetched": clients.ui_images},
            "mqtt": mq, "hook": hook, "metrics": prom,
            "rejects": {"saved": summary.get("rejects"), "errors": summary.get("reject_errors")},
            "client_errors": clients.errors,
        }
        checks.update({
            # OPC UA and Modbus: each was handed every log line, and every state posted is accounted for.
            "opcua_count": o["handled"] == len(items)
            and o["updates"] == o["applied"] + o["dropped"] + o["failed"] + o["waiting"],
            # Clients sample (subscription / 10 Hz polls) until the servers close: the last frames may be missed.
            "opcua_client_saw_the_end": (clients.opcua_last or 0) >= judged - late,
            "modbus_count": m["handled"] == len(items) and clients.modbus_backwards == 0,
            "modbus_client_saw_the_end": clients.modbus_last >= judged - late,
            "webhook_count": w["queued"] == judged == w["sent"] + w["failed"] + w["dropped"] + w["unsent"]
            and clients.webhook_received == w["sent"],
            "ui_count": u["handled"] == len(items) and clients.sse_events > 0 and clients.ui_images > 0,
            "metrics_count": prom == {"passed": judged - defective - by["error"], "failed": defective,
                                      "errors": by["error"], "dropped": by["dropped"]},
            "rejects_count": summary.get("rejects") == (defective if "rejects" in opts else 0),
            "hook_count": hook.get("run", 0) + hook.get("skipped", 0) == defective,
        })
        if mq is not None:
            checks["mqtt_count"] = mq["published"] + mq["failed"] + mq["unsent"] == judged
    res["checks"] = checks
    res["passed"] = all(checks.values())
    return res


def plant_runs(video, model, work, frames, fps=20.0):
    """The soak without sinks, then with all of them; the e2e p95 ratio decides the last check."""
    from tests.fixtures.watch import MOSQUITTO, free_port, start_mosquitto

    broker, mqtt = None, None
    if os.path.exists(MOSQUITTO):
        port = free_port()
        broker = start_mosquitto(port, work)
        mqtt = f"127.0.0.1:{port}"
    out = {}
    try:
        # (a third run without --rejects showed the reject save cost the p95 until the writer thread)
        for name, sinks, without in (("plant_off", False, ()), ("plant_on", True, ())):
            print(f"run {name}: {frames} frames at {fps:g} fps, " + ("all sinks + clients" if sinks else "no sinks")
                  + (f" except {', '.join(without)}" if without else "") + " ...", flush=True)
            out[name] = r = plant_run(name, video, model, work, frames, fps, sinks, mqtt, without)
            print(f"  ok {r['ok']} + error {r['error']} + dropped {r['dropped']} = {r['log_items']} (sent {r['sent']}); "
                  f"e2e p50/p95 {r['e2e_ms_p50']}/{r['e2e_ms_p95']} ms; rss {r['rss_growth_pct']} %; "
                  f"failed checks {[k for k, v in r['checks'].items() if not v]}", flush=True)
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(5)
    off = out["plant_off"]
    for name in ("plant_on",):
        on = out[name]
        ratio = on["e2e_ms_p95"] / off["e2e_ms_p95"] if on["e2e_ms_p95"] and off["e2e_ms_p95"] else None
        on["e2e_p95_ratio_vs_no_sinks"] = None if ratio is None else round(ratio, 3)
        on["checks"]["e2e_p95_within_1.2x"] = ratio is not None and ratio <= E2E_P95_RATIO
        on["passed"] = all(on["checks"].values())
    return out
