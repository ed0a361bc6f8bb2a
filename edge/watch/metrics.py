"""Prometheus ``/metrics`` for the service (prometheus-client, own registry).

Bound to 127.0.0.1 unless ``--metrics-host`` says otherwise: the endpoint has
no authentication, so exposing it on the plant network is an explicit choice.
"""
from __future__ import annotations

from collections import deque

from edge.errors import EdgeInspectError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class MetricsError(EdgeInspectError):
    pass


def require_prometheus():
    try:
        import prometheus_client
    except ImportError:
        raise MetricsError("--metrics-port needs prometheus-client: pip install 'edgeinspect[watch]'") from None
    return prometheus_client


class DriftTracker:
    """Rolling mean score of the last N passed items minus the mean of the first N (a baseline).

    A slow upward creep of the 'good' parts' score is the usual first sign of a
    dirty lens, changed lighting or a new supplier, long before parts fail.
    """

    def __init__(self, window=100):
        self.window = max(1, int(window))
        self.reset()

    def reset(self):
        self.baseline = []
        self.recent = deque(maxlen=self.window)
        self._sum = 0.0

    def add(self, score):
        score = float(score)
        if len(self.baseline) < self.window:
            self.baseline.append(score)
        if len(self.recent) == self.recent.maxlen:
            self._sum -= self.recent[0]
        self.recent.append(score)
        self._sum += score

    @property
    def drift(self):
        if len(self.baseline) < self.window:
            return 0.0
        return self._sum / len(self.recent) - sum(self.baseline) / len(self.baseline)

    @property
    def recent_mean(self):
        return self._sum / len(self.recent) if self.recent else 0.0


class Metrics:
    def __init__(self, port, host="127.0.0.1"):
        pc = require_prometheus()
        self.registry = reg = pc.CollectorRegistry()
        self.passed = pc.Counter("edgeinspect_passed", "Parts called good", registry=reg)
        self.failed = pc.Counter("edgeinspect_failed", "Parts called defective", registry=reg)
        self.errors = pc.Counter("edgeinspect_errors", "Items that could not be inspected (bad file/frame, inference error)", registry=reg)
        self.dropped = pc.Counter("edgeinspect_dropped", "Frames dropped because inference was slower than the source", registry=reg)
        self.disconnects = pc.Counter("edgeinspect_source_disconnects", "Source read failures (then retried with back-off)", registry=reg)
        self.hook_timeouts = pc.Counter("edgeinspect_hook_timeouts", "--on-defect hooks killed at --hook-timeout", registry=reg)
        self.reloads = pc.Counter("edgeinspect_model_reloads", "Model file changes handled", ["result"], registry=reg)
        self.latency = pc.Histogram("edgeinspect_inference_latency_seconds", "Model inference time", buckets=LATENCY_BUCKETS, registry=reg)
        self.e2e = pc.Histogram("edgeinspect_e2e_latency_seconds", "Frame in to result logged", buckets=LATENCY_BUCKETS, registry=reg)
        self.drift = pc.Gauge("edgeinspect_score_drift", "Mean score of the last N passed parts minus the first N", registry=reg)
        self.recent_score = pc.Gauge("edgeinspect_score_recent_mean", "Mean score of the last N passed parts", registry=reg)
        self.queue = pc.Gauge("edgeinspect_queue_depth", "Items waiting for inference", registry=reg)
        self.model_info = pc.Gauge("edgeinspect_model_info", "The model in use (value 1)",
                                   ["path", "version", "task", "variant"], registry=reg)
        try:
            self.server, self.thread = pc.start_http_server(int(port), addr=host, registry=reg)
        except OSError as exc:
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
