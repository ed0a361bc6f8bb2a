"""watch's plant outputs against real servers and clients on 127.0.0.1: OPC UA (asyncua), Modbus TCP (pymodbus),
a webhook receiver, and the live page (HTTP, SSE, headless Chromium)."""
import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from edge.watch.config import ConfigError
from edge.watch.log import read_log
from edge.watch.service import Service, WatchConfig
from edge.watch.sinks.modbus import N_REGISTERS
from edge.watch.sinks.opcua import NAMESPACE, NODES, OpcUaServer
from edge.watch.sources import VideoSource
from tests.fixtures.plant import WebhookReceiver, make_cert
from tests.fixtures.watch import (GREY, RED, FaultySource, free_port, run_in_thread, stop_thread, wait_until,
                                  write_png)


def _items(log):
    return [r for r in read_log(log) if "status" in r]



def _folder_service(tmp_path, model, **kw):
    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    svc = Service(WatchConfig(model=str(model), source=str(cam), log=str(log), poll=0.02, settle_timeout=0.3,
                              quiet=True, **kw))
    return svc, cam, log


async def _until(read, pred, timeout=10.0, what="value"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = await read()
        if pred(v):
            return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last {v!r})")


def test_opcua_client_reads_and_subscribes_and_values_follow_the_log(tmp_path, tiny_classifier_tflite):
    from asyncua import Client, ua

    svc, cam, log = _folder_service(tmp_path, tiny_classifier_tflite, opcua_port=free_port())
    t, box = run_in_thread(svc)
    url = svc.sinks.get("opcua").url
    changes = []

    class Handler:
        def datachange_notification(self, node, val, data):
            changes.append((node.nodeid.Identifier, val))

    async def client():
        async with Client(url, timeout=10) as c:
            ns = await c.get_namespace_index(NAMESPACE)
            assert ns == 1  # the README: ns=1;s=edgeinspect.Verdict
            node = lambda name: c.get_node(f"ns={ns};s=edgeinspect.{name}")  # noqa: E731
            obj = c.get_node(f"ns={ns};s=edgeinspect")
            names = {(await ch.read_browse_name()).Name for ch in await obj.get_children()}
            assert names == {n[0] for n in NODES}
            await _until(node("State").read_value, lambda v: v == "running", what="State running")
            assert await node("Sequence").read_value() == 0 and await node("Verdict").read_value() == ""
            sub = await c.create_subscription(20, Handler())
            await sub.subscribe_data_change([node("Sequence"), node("Verdict")])

            write_png(cam / "a_red.png", RED)
            await _until(node("Sequence").read_value, lambda v: v == 1, what="first result")
            rec = _items(log)[-1]
            got = {n: await node(n).read_value() for n, *_ in NODES}
            assert got["Verdict"] == rec["verdict"] == "defective" and got["Defective"] is True
            assert got["Score"] == pytest.approx(rec["score"], abs=1e-6) and got["DefectType"] == rec["type"]
            assert got["ImageName"] == "a_red.png" and got["ResultTime"] == rec["time"]
            assert (got["Inspected"], got["DefectiveCount"], got["Passed"], got["Errors"]) == (1, 1, 0, 0)
            assert got["LatencyP50Ms"] == pytest.approx(rec["latency_ms"], rel=1e-6)
            assert got["Threshold"] == pytest.approx(svc.model.threshold)
            assert got["ModelVersion"] == str(svc.model.meta.get("model_version") or "")

            write_png(cam / "b_grey.png", GREY)
            await _until(node("Sequence").read_value, lambda v: v == 2, what="second result")
            assert await node("Verdict").read_value() == "good" and await node("Defective").read_value() is False
            (cam / "c_bad.png").write_bytes(b"not a png")
            await _until(node("Errors").read_value, lambda v: v == 1, what="the error")
            assert await node("Verdict").read_value() == "error" and await node("Sequence").read_value() == 3
            assert await node("Inspected").read_value() == 2
            with pytest.raises(ua.UaStatusCodeError):  # read-only for clients: a PLC cannot fake a verdict
                await node("Verdict").write_value("good")
            await _until(lambda: asyncio.sleep(0, len(changes)), lambda n: ("edgeinspect.Sequence", 3) in changes,
                         what="subscription notifications")
            await sub.delete()

    asyncio.run(client())
    summary = stop_thread(svc, t, box)
    seqs = [v for k, v in changes if k == "edgeinspect.Sequence"]
    assert seqs == sorted(seqs) and {1, 2, 3} <= set(seqs)  # the subscriber saw every result, in order
    verdicts = [v for k, v in changes if k == "edgeinspect.Verdict"]
    assert verdicts[-3:] == ["defective", "good", "error"]
    o = summary["opcua"]
    assert o["handled"] == len(_items(log)) == 3
    assert o["updates"] == o["applied"] + o["dropped"] + o["failed"] + o["waiting"] and o["failed"] == 0


def test_opcua_security_only_sign_and_encrypt_with_trusted_clients(tmp_path):
    from asyncua import Client

    uri = "urn:edgeinspect:test-client"
    server_cert, server_key = make_cert(tmp_path / "server", "server", "urn:edgeinspect:watch")
    trusted, trusted_key = make_cert(tmp_path / "trusted", "client", uri, client=True)
    other, other_key = make_cert(tmp_path / "other", "other", uri, client=True)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "client.pem").write_bytes(trusted.read_bytes())
    srv = OpcUaServer(free_port(), cert=server_cert, key=server_key, trust=trust)
    srv.handle({"status": "ok", "verdict": "defective", "score": 0.9, "source": "p.png", "latency_ms": 2.0}, None, None)

    async def read_sequence(cert=None, key=None):
        c = Client(srv.url, timeout=5)
        c.application_uri = uri
        if cert:
            await c.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
        async with c:
            ns = await c.get_namespace_index(NAMESPACE)
            return await c.get_node(f"ns={ns};s=edgeinspect.Sequence").read_value()

    try:
        assert asyncio.run(read_sequence(trusted, trusted_key)) == 1
        with pytest.raises(Exception):  # no anonymous plain-text endpoint
            asyncio.run(read_sequence())
        with pytest.raises(Exception):  # a certificate outside --opcua-trust
            asyncio.run(read_sequence(other, other_key))
    finally:
        srv.close()


def test_opcua_update_never_waits_for_a_stuck_server_thread(tmp_path):
    """A server thread that hangs (here: blocked for 1 s) costs the inspection loop nothing: the newest state
    replaces the waiting one, the replaced ones are counted, and the newest reaches the clients afterwards."""
    from asyncua import Client

    srv = OpcUaServer(free_port())
    released = threading.Event()
    try:
        srv.thread.loop.call_soon_threadsafe(lambda: (time.sleep(1.0), released.set()))
        time.sleep(0.05)
        for i in range(50):
            srv.handle({"status": "ok", "verdict": "good", "score": i / 100, "source": f"p{i}.png"}, None, None)
        assert not released.is_set()  # all 50 handed over while the server thread was still stuck
        assert srv.thread.flush(5.0)
        s = srv.summary()
        assert s["handled"] == 50 and s["dropped"] >= 48 and s["updates"] == s["applied"] + s["dropped"]

        async def read():
            async with Client(srv.url, timeout=5) as c:
                ns = await c.get_namespace_index(NAMESPACE)
                return [await c.get_node(f"ns={ns};s=edgeinspect.{n}").read_value() for n in ("Sequence", "Score")]

        assert asyncio.run(read()) == [50, pytest.approx(0.49)]
    finally:
        srv.close()


def _u32(regs, a):
    return (regs[a] << 16) | regs[a + 1]


def test_modbus_registers_match_the_log(tmp_path, tiny_classifier_tflite):
    from pymodbus.client import ModbusTcpClient

    port = free_port()
    svc, cam, log = _folder_service(tmp_path, tiny_classifier_tflite, modbus_port=port)
    t, box = run_in_thread(svc)
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
    try:
        assert client.connect()
        wait_until(lambda: client.read_input_registers(0, count=N_REGISTERS).registers[16] == 1, what="running")
        for i, (name, color) in enumerate([("a_red.png", RED), ("b_grey.png", GREY), ("c_red.png", RED)]):
            write_png(cam / name, color)
            wait_until(lambda: _u32(client.read_input_registers(0, count=N_REGISTERS).registers, 0) == i + 1,
                       what=f"result {i + 1}")
            regs = client.read_input_registers(0, count=N_REGISTERS).registers
            items = _items(log)
            rec = items[-1]
            assert rec["source"].endswith(name)
            assert regs[2] == {"good": 1, "defective": 2}[rec["verdict"]]
            assert regs[3] == round(rec["score"] * 1000)
            labels = svc.model.labels
            assert regs[4] == (labels.index(rec["type"]) if rec["type"] else 0)
            n_def = sum(r["verdict"] == "defective" for r in items)
            assert [_u32(regs, a) for a in (5, 7, 9, 11, 13)] == [len(items), n_def, len(items) - n_def, 0, 0]
            assert regs[15] == round(10 * float(np.median([r["latency_ms"] for r in items])))
            assert regs[17] == round(1000 * svc.model.threshold)
            assert client.read_holding_registers(0, count=N_REGISTERS).registers == regs  # FC 3 mirrors FC 4
            bits = client.read_coils(0, count=3).bits[:3]
            assert bits == [rec["verdict"] == "defective", False, True]
            assert client.read_discrete_inputs(0, count=3).bits[:3] == bits
        (cam / "d_bad.png").write_bytes(b"garbage")
        wait_until(lambda: _u32(client.read_input_registers(0, count=N_REGISTERS).registers, 11) == 1, what="error")
        regs = client.read_input_registers(0, count=N_REGISTERS).registers
        assert regs[2] == 3 and _u32(regs, 0) == 4 and client.read_coils(0, count=2).bits[:2] == [False, True]
        assert client.write_register(0, 7).isError() and client.write_coil(0, True).isError()  # read-only
        assert _u32(client.read_input_registers(0, count=2).registers, 0) == 4
    finally:
        client.close()
        summary = stop_thread(svc, t, box)
    assert summary["modbus"]["handled"] == len(_items(log)) == 4 and summary["modbus"]["reads"] > 0


def _video_run(tmp_path, model, video, name, **kw):
    log = tmp_path / f"{name}.jsonl"
    src = FaultySource(VideoSource(video), corrupt={4})
    cfg = WatchConfig(model=str(model), source=str(video), log=str(log), quiet=True, **kw)
    return Service(cfg, source=src).run(install_signals=False), _items(log), list(read_log(log))


def test_webhook_posts_match_the_log_and_a_dead_endpoint_costs_nothing_but_counted_losses(
        tmp_path, tiny_classifier_tflite, watch_video):
    rx = WebhookReceiver(free_port()).start()
    try:
        summary, items, _ = _video_run(tmp_path, tiny_classifier_tflite, watch_video, "all", webhook=rx.url)
    finally:
        rx.stop()
    assert summary["webhook"]["sent"] == 30 == len(rx.posts) and summary["webhook"]["failed"] == 0
    assert all(ctype == "application/json" for ctype, _ in rx.posts)
    by_source = {b["source"]: b for _, b in rx.posts}
    assert sorted(by_source) == sorted(r["source"] for r in items)
    for r in items:  # each post is the logged record (the corrupt frame's error too)
        assert {k: by_source[r["source"]][k] for k in ("status", "verdict", "score", "e2e_ms")} == \
            {k: r[k] for k in ("status", "verdict", "score", "e2e_ms")}

    # --webhook-on defective, an endpoint that fails each first attempt with 503: retried, all delivered.
    rx = WebhookReceiver(free_port(), fail_first=True).start()
    try:
        summary, items, _ = _video_run(tmp_path, tiny_classifier_tflite, watch_video, "defective", webhook=rx.url,
                                       webhook_on="defective", webhook_backoff=0.01)
    finally:
        rx.stop()
    defective = [r["source"] for r in items if r["verdict"] == "defective"]
    assert len(defective) == 10 and sorted(b["source"] for _, b in rx.posts) == sorted(defective)
    w = summary["webhook"]
    assert (w["sent"], w["retries"], w["failed"], rx.attempts) == (10, 10, 0, 20)

    # Nobody listening: inspection goes on, every result is still logged, and every post is a counted loss.
    port = free_port()
    summary, items, recs = _video_run(tmp_path, tiny_classifier_tflite, watch_video, "down",
                                      webhook=f"http://127.0.0.1:{port}/results", webhook_retries=2,
                                      webhook_backoff=0.01, webhook_timeout=0.5)
    assert [r["source"] for r in items] == [f"video:{i}" for i in range(30)] and summary["ok"] == 29
    w = summary["webhook"]
    assert w["sent"] == 0 and w["queued"] == 30 == w["failed"] + w["dropped"] + w["unsent"]
    down = [r for r in recs if r.get("event") == "webhook_unreachable"]
    assert len(down) == 1 and f"127.0.0.1:{port}" in down[0]["error"]  # once per outage, not per post


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_live_page_with_a_reject_and_its_heat_map_renders_in_chromium(tmp_path, tiny_anomaly_tflite):
    from PIL import Image

    from benchmarks.render_check import find_chromium

    svc, cam, log = _folder_service(tmp_path, tiny_anomaly_tflite, ui_port=free_port())
    t, box = run_in_thread(svc)
    base = f"http://127.0.0.1:{svc.sinks.get('ui').port}/"
    try:
        write_png(cam / "plain.png", (60, 60, 60), size=(96, 96))
        wait_until(lambda: len(_items(log)) == 1, what="the good part")
        img = np.full((96, 96, 3), 60, np.uint8)
        img[20:44, 52:76] = 250  # a bright patch: anomalous for the tiny anomaly model
        Image.fromarray(img).save(cam / "spot.png")
        wait_until(lambda: len(_items(log)) == 2, what="the reject")
        items = {os.path.basename(r["source"]): r for r in _items(log)}
        assert items["spot.png"]["verdict"] == "defective" and items["plain.png"]["verdict"] == "good"

        # the page is updated after the log line is written (an output never delays the log): wait for it
        wait_until(lambda: json.loads(_get(base + "api/state")[2])["counts"]["inspected"] == 2, what="the page")
        code, headers, body = _get(base + "api/state")
        state = json.loads(body)
        assert code == 200 and state["state"] == "running"
        assert state["counts"] == {"sequence": 2, "inspected": 2, "passed": 1, "defective_count": 1, "errors": 0,
                                   "dropped": 0}
        assert [r["image"] for r in state["recent"]] == ["spot.png", "plain.png"]  # newest first
        (reject,) = state["rejects"]
        assert reject["image"] == "spot.png" and reject["score"] == items["spot.png"]["score"] and reject["heat"]
        code, headers, png = _get(base + reject["heat"])
        heat = np.asarray(Image.open(__import__("io").BytesIO(png)).convert("RGB"))
        assert code == 200 and headers["Content-Type"] == "image/png" and heat.shape[0] >= 96
        h, w = heat.shape[:2]
        plain = np.asarray(Image.fromarray(img).resize((w, h), Image.NEAREST)).astype(int)
        hot = np.abs(heat.astype(int) - plain).sum(axis=2) > 120  # where the heat map and outline are strong
        ys, xs = np.nonzero(hot)
        assert hot.sum() > 50 and xs.mean() > w / 2 and ys.mean() < h / 2  # on the patch (upper right)
        code, headers, jpg = _get(base + reject["thumb"])
        assert code == 200 and Image.open(__import__("io").BytesIO(jpg)).size == (96, 96)
        assert _get(base + "img/999.jpg")[0] == 404

        code, headers, html = _get(base)
        page = html.decode()
        assert code == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
        import re
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "@import" not in page
        assert '"spot.png"' in page  # the state is inlined: the page draws without a second request

        with urllib.request.urlopen(base + "events", timeout=10) as r:  # Server-Sent Events
            assert r.headers["Content-Type"] == "text/event-stream"
            line = r.readline().decode()
            assert line.startswith("data: ") and json.loads(line[6:])["counts"]["defective_count"] == 1

        exe = find_chromium()
        assert exe, "Chromium not found: apt-get install -y chromium (the README's test set-up)"
        dom = _chromium(exe, base, tmp_path, "--dump-dom").stdout  # the page after its script ran
        assert "DEFECTIVE" in dom and f'src="{reject["heat"]}"' in dom and f'src="{reject["thumb"]}"' in dom
        shot = tmp_path / "live.png"
        _chromium(exe, base, tmp_path, f"--screenshot={shot}", "--window-size=1280,1300")
        assert shot.is_file() and shot.stat().st_size > 0
        pix = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        banner = (abs(pix[..., 0] - 229) < 8) & (abs(pix[..., 1] - 72) < 8) & (abs(pix[..., 2] - 77) < 8)
        assert banner.sum() > 10000, "the DEFECTIVE verdict banner is not drawn"
        # The heat map's own strongly coloured pixels (the page itself has none of these colours) are on screen.
        vivid = hot & (heat.max(axis=2).astype(int) - heat.min(axis=2) > 80)
        code = lambda a: (a[..., 0] // 16) * 256 + (a[..., 1] // 16) * 16 + a[..., 2] // 16  # noqa: E731
        assert np.isin(code(pix), np.unique(code(heat.astype(int))[vivid])).sum() > 100, "the heat map is not drawn"
    finally:
        summary = stop_thread(svc, t, box)
    assert summary["ui"]["handled"] == 2 and summary["ui"]["requests"] >= 6


def _chromium(exe, url, tmp_path, *args):
    import subprocess

    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chr'}",
           *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]
    return proc


def test_live_page_token(tmp_path, tiny_classifier_tflite):
    with pytest.raises(ConfigError, match="--ui-token"):
        WatchConfig(model="m.tflite", source="cam", ui_port=8080, listen="0.0.0.0")
    svc, cam, log = _folder_service(tmp_path, tiny_classifier_tflite, ui_port=free_port(), ui_token="s3cret")
    t, box = run_in_thread(svc)
    base = f"http://127.0.0.1:{svc.sinks.get('ui').port}/"
    try:
        write_png(cam / "a_red.png", RED)
        wait_until(lambda: len(_items(log)) == 1, what="a result")
        for path in ("", "api/state", "events", "img/1.jpg"):
            assert _get(base + path)[0] == 401
        assert _get(base + "api/state?token=wrong")[0] == 401
        assert _get(base + "api/state", {"Authorization": "Bearer wrong"})[0] == 401
        code, headers, _ = _get(base + "?token=s3cret")
        assert code == 200 and "HttpOnly" in headers["Set-Cookie"]
        cookie = headers["Set-Cookie"].split(";")[0]
        assert _get(base + "img/1.jpg", {"Cookie": cookie})[0] == 200  # the page's own image requests
        # the page is updated after the log line is written: wait for it rather than race it
        assert wait_until(lambda: json.loads(_get(base + "api/state", {"Authorization": "Bearer s3cret"})[2])
                          ["counts"]["inspected"] == 1, what="the page with a token")
        head = urllib.request.Request(base + "events", method="HEAD", headers={"Cookie": cookie})
        with urllib.request.urlopen(head, timeout=5) as r:  # answered at once, not a stream that never ends
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream" and r.read() == b""
        req = urllib.request.Request(base + "api/state?token=s3cret", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:  # read-only
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 501
    finally:
        stop_thread(svc, t, box)


def test_a_port_in_use_is_one_line_naming_the_option(tmp_path, tiny_classifier_tflite):
    import socket

    from edge.errors import EdgeInspectError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        for flag in ("opcua_port", "modbus_port", "ui_port"):
            cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(tmp_path), quiet=True, **{flag: port})
            with pytest.raises(EdgeInspectError) as err:
                Service(cfg)
            msg = str(err.value)
            assert msg.startswith(f"--{flag.replace('_', '-')} {port}: cannot listen on 127.0.0.1:{port}") \
                and "\n" not in msg, msg
