"""Prometheus ``/metrics`` for the service (prometheus-client, own registry).

Bound to 127.0.0.1 unless ``--metrics-host`` says otherwise: the endpoint has
no authentication, so exposing it on the plant network is an explicit choice.
"""
from __future__ import annotations

import errno
import socket

from edge.errors import EdgeInspectError
from edge.optional import require_optional
from edge.watch.sinks import BaseSink
from edge.watch.stats import DriftTracker

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class MetricsError(EdgeInspectError):
    pass


class Metrics(BaseSink):
    name = "metrics"

    def __init__(self, port, host="127.0.0.1", drift_window=100, queue_depth=None, current_meta=None):
        pc = require_optional("prometheus_client", "watch", "--metrics-port", "prometheus-client", MetricsError)
        self.drift_tracker = DriftTracker(drift_window)
        self.queue_depth = queue_depth or (lambda: 0)
        self.current_meta = current_meta or (lambda: {})
        self.registry = reg = pc.CollectorRegistry()
        self.passed = pc.Counter("edgeinspect_passed", "Parts called good", registry=reg)
        self.failed = pc.Counter("edgeinspect_failed", "Parts called defective", registry=reg)
        self.errors = pc.Counter("edgeinspect_errors", "Items that could not be inspected (bad file/frame, inference error)", registry=reg)
        self.dropped = pc.Counter("edgeinspect_dropped", "Frames dropped because inference was slower than the source", registry=reg)
        self.disconnects = pc.Counter("edgeinspect_source_disconnects", "Source read failures (then retried with back-off)", registry=reg)
        self.hook_timeouts = pc.Counter("edgeinspect_hook_timeouts", "--on-defect hooks killed at --hook-timeout", registry=reg)
        self.reloads = pc.Counter("edgeinspect_model_reloads", "Model file changes handled", ["result"], registry=reg)
        self.latency = pc.Histogram("edgeinspect_inference_latency_seconds", "Model inference time", buckets=LATENCY_BUCKETS, registry=reg)
        self.stage = pc.Histogram("edgeinspect_stage_latency_seconds", "Inference time by stage (preprocess: "
                                  "decode/resize/quantize, invoke: the interpreter, postprocess: outputs to verdict)",
                                  ["stage"], buckets=LATENCY_BUCKETS, registry=reg)
        self.e2e = pc.Histogram("edgeinspect_e2e_latency_seconds", "Frame in to result logged", buckets=LATENCY_BUCKETS, registry=reg)
        self.drift = pc.Gauge("edgeinspect_score_drift", "Mean score of the last N passed parts minus the first N", registry=reg)
        self.recent_score = pc.Gauge("edgeinspect_score_recent_mean", "Mean score of the last N passed parts", registry=reg)
        self.queue = pc.Gauge("edgeinspect_queue_depth", "Items waiting for inference", registry=reg)
        self.model_info = pc.Gauge("edgeinspect_model_info", "The model in use (value 1)",
                                   ["path", "version", "task", "variant"], registry=reg)
        try:
            self.server, self.thread = pc.start_http_server(int(port), addr=host, registry=reg)
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise MetricsError(f"--metrics-host {host}: not an address of this machine ({exc.strerror or exc}); "
                                   "use 127.0.0.1, 0.0.0.0 or one of its interface addresses") from None
            raise MetricsError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); pick a free port") from None
        self.port = self.server.server_port
        self.host = host

    def set_model(self, path, meta):
        meta = meta or {}
        self.model_info.clear()
        self.model_info.labels(path=str(path), version=str(meta.get("model_version", "")),
                               task=str(meta.get("task", "")), variant=str(meta.get("variant", ""))).set(1)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def handle(self, record, prediction, item):
        status = record.get("status")
        if status == "dropped":
            self.dropped.inc()
            return
        if prediction is None:
            self.errors.inc()
        elif prediction.verdict == "defective":
            self.failed.inc()
        else:
            self.passed.inc()
            self.drift_tracker.add(prediction.score)
        if record.get("e2e_ms") is not None:
            self.e2e.observe(record["e2e_ms"] / 1e3)
        if prediction is not None:
            self.latency.observe(prediction.latency_ms / 1e3)
            for stage, ms in (prediction.stages_ms or {}).items():
                self.stage.labels(stage=stage).observe(ms / 1e3)
            self.drift.set(self.drift_tracker.drift)
            self.recent_score.set(self.drift_tracker.recent_mean)
        self.queue.set(self.queue_depth())

    def event(self, record):
        name = record.get("event")
        if name == "source_disconnected":
            self.disconnects.inc()
        elif name == "hook_timeout":
            self.hook_timeouts.inc()
        elif name == "model_reload_failed":
            self.reloads.labels(result="failed").inc()
        elif name == "model_reloaded":
            self.reloads.labels(result="ok").inc()
            self.drift_tracker.reset()  # a new model has its own score distribution
            self.set_model(record.get("model"), self.current_meta())


def from_config(cfg, ctx):
    if cfg.metrics_port is None:
        return None
    m = Metrics(cfg.metrics_port, cfg.metrics_host, cfg.drift_window, ctx.queue_depth, lambda: ctx.model().meta)
    m.set_model(ctx.model_path, ctx.model().meta)
    return m
