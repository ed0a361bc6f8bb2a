"""``--opcua-port``: an OPC UA server (asyncua) with an ``edgeinspect`` object a PLC or SCADA reads or subscribes to.

The variables (``NODES``, also the README's node list) carry the last
result, the counters and the model, updated per frame. They live in
namespace ``urn:edgeinspect:watch`` with string node ids
``ns=<idx>;s=edgeinspect.<Name>`` (stable across restarts, so a PLC program
can address them directly) and are read-only for clients.

The server runs on its own thread and event loop (:mod:`loop_thread`); the
inspection loop only posts the newest state and never waits. Bound to
127.0.0.1 unless ``--listen``; with ``--opcua-security CERT --opcua-key KEY``
the only endpoint is Basic256Sha256 Sign & Encrypt (no anonymous plain-text
endpoint), and ``--opcua-trust DIR`` limits clients to the certificates in it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from edge.errors import EdgeInspectError
from edge.optional import require_optional
from edge.watch.sinks import BaseSink
from edge.watch.sinks.line_state import LineState
from edge.watch.sinks.loop_thread import LoopThread

NAMESPACE = "urn:edgeinspect:watch"
APPLICATION_URI = "urn:edgeinspect:watch"
U32 = 2 ** 32

# (browse name, OPC UA type, LineState snapshot key, meaning)
NODES = (
    ("Sequence", "UInt32", "sequence", "results so far (ok + error); changes when a new result is published"),
    ("Verdict", "String", "verdict", "last verdict: good, defective or error (empty before the first part)"),
    ("Defective", "Boolean", "defective", "last part defective"),
    ("Score", "Double", "score", "last score (defective when >= Threshold)"),
    ("DefectType", "String", "type", "last defect type (models with a type head; empty otherwise)"),
    ("ImageName", "String", "image", "last image file name or frame id (video:N)"),
    ("ResultTime", "String", "time", "UTC time the last result was logged (ISO 8601)"),
    ("Inspected", "UInt32", "inspected", "parts judged by the model (log lines with status ok)"),
    ("DefectiveCount", "UInt32", "defective_count", "parts called defective"),
    ("Passed", "UInt32", "passed", "parts called good"),
    ("Errors", "UInt32", "errors", "items that could not be inspected (bad file/frame, inference error)"),
    ("Dropped", "UInt32", "dropped", "frames dropped because inference was slower than the camera"),
    ("LatencyP50Ms", "Double", "latency_p50_ms", "median inference time of the last 1000 parts, ms"),
    ("ModelName", "String", "model_name", "the model in use (training run name, else the file name)"),
    ("ModelVersion", "String", "model_version", "its model_version metadata"),
    ("Threshold", "Double", "threshold", "its decision threshold"),
    ("State", "String", "state", "service state: starting, running, stopped"),
)


def format_nodes() -> str:
    """The node list as a Markdown table (the README's)."""
    lines = ["| node id (ns = urn:edgeinspect:watch) | type | meaning |", "| --- | --- | --- |"]
    lines += [f"| `edgeinspect.{name}` | {vtype} | {meaning} |" for name, vtype, _, meaning in NODES]
    return "\n".join(lines)


class OpcUaError(EdgeInspectError):
    pass


def _value(key, snap):
    return snap["verdict"] == "defective" if key == "defective" else snap.get(key)


class OpcUaServer(BaseSink):
    name = "opcua"

    def __init__(self, port, host="127.0.0.1", current_model=None, model_path="", cert=None, key=None, trust=None):
        self.asyncua = require_optional("asyncua", "plant", "--opcua-port", "asyncua", OpcUaError)
        for noisy in ("asyncua", "asyncua.server", "asyncua.uaprotocol"):
            logging.getLogger(noisy).setLevel(logging.ERROR)  # it logs every connection at INFO/WARNING
        if bool(cert) != bool(key):
            raise OpcUaError("--opcua-security needs both the certificate and --opcua-key (the private key)")
        for flag, p in (("--opcua-security", cert), ("--opcua-key", key)):
            if p and not Path(p).is_file():
                raise OpcUaError(f"{flag} {p}: no such file; pass the server certificate (PEM/DER) and its key")
        if trust and not Path(trust).is_dir():
            raise OpcUaError(f"--opcua-trust {trust}: not a folder of trusted client certificates")
        self.host, self.port, self.secure = host, int(port), bool(cert)
        self.url = f"opc.tcp://{host}:{self.port}/edgeinspect/"
        self.current_model = current_model or (lambda: None)
        self.line = LineState(self.current_model(), model_path)
        self._cert, self._key, self._trust = cert, key, trust
        self._server = self._nodes = None
        self._written = {}
        try:
            self.thread = LoopThread("opcua", self._start, self._apply, self._stop_server)
        except OSError as exc:
            raise OpcUaError(f"--opcua-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                             "pick a free port or another --listen address") from None
        except OpcUaError:
            raise
        except Exception as exc:  # noqa: BLE001 - asyncua raises many kinds on a bad cert or key
            raise OpcUaError(f"--opcua-port {port}: the OPC UA server did not start: {type(exc).__name__}: {exc}") from None
        self.post()

    async def _start(self):
        asyncua = self.asyncua
        ua = asyncua.ua
        server = asyncua.Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("edgeinspect watch")
        await server.set_application_uri(APPLICATION_URI)
        server.disable_clock()  # a write per second nobody asked for
        if self.secure:
            try:
                await server.load_certificate(str(self._cert))
                await server.load_private_key(str(self._key))
            except Exception as exc:  # noqa: BLE001
                raise OpcUaError(f"--opcua-security {self._cert} / --opcua-key {self._key}: cannot load them "
                                 f"({type(exc).__name__}: {exc})") from None
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            if self._trust:
                from asyncua.crypto.truststore import TrustStore
                from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

                store = TrustStore([Path(self._trust)], [])
                await store.load()
                server.set_certificate_validator(CertificateValidator(
                    CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        obj = await server.nodes.objects.add_object(ua.NodeId("edgeinspect", idx), ua.QualifiedName("edgeinspect", idx))
        self.ns = idx
        snap = self.line.snapshot()
        self._nodes = {}
        for name, vtype, key, _ in NODES:
            vt = getattr(ua.VariantType, vtype)
            node = await obj.add_variable(ua.NodeId(f"edgeinspect.{name}", idx), ua.QualifiedName(name, idx),
                                          self._coerce(vtype, _value(key, snap)), vt)
            self._nodes[name] = (node.nodeid, vt, vtype, key)
        await server.start()
        self._server = server

    @staticmethod
    def _coerce(vtype, v):
        if vtype == "String":
            return "" if v is None else str(v)
        if vtype == "Double":
            return 0.0 if v is None else float(v)
        if vtype == "Boolean":
            return bool(v)
        return int(v or 0) % U32

    async def _apply(self, snap):
        ua = self.asyncua.ua
        for name, (nodeid, vt, vtype, key) in self._nodes.items():
            v = self._coerce(vtype, _value(key, snap))
            if self._written.get(name) == v:
                continue  # only changes: fewer writes, and subscribers are notified of real changes only
            await self._server.write_attribute_value(nodeid, ua.DataValue(ua.Variant(v, vt)))
            self._written[name] = v

    async def _stop_server(self):
        if self._server is not None:
            await self._server.stop()

    def post(self):
        self.thread.post(self.line.snapshot())

    def handle(self, record, prediction, item):
        self.line.add(record)
        self.post()

    def event(self, record):
        if self.line.apply_event(record, self.current_model):
            self.post()

    def summary(self):
        t = self.thread
        return {"handled": self.line.handled, "updates": t.posted, "applied": t.applied, "dropped": t.dropped,
                "failed": t.failed, "waiting": t.waiting, "url": self.url}

    def close(self):
        if not self.thread.alive:
            return
        self.line.state = "stopped"
        self.post()
        self.thread.flush(2.0)  # a client polling at the stop sees "stopped" before the socket closes
        self.thread.close()


def from_config(cfg, ctx):
    if cfg.opcua_port is None:
        return None
    return OpcUaServer(cfg.opcua_port, cfg.listen, ctx.model, ctx.model_path, cfg.opcua_security, cfg.opcua_key,
                       cfg.opcua_trust)
