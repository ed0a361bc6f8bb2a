"""What the line's machines see: one snapshot of the last result, the counters and the model.

The OPC UA server, the Modbus registers and the live page all publish this
same state, built here from the records the service hands every sink (so
their counters equal the log's: inspected = ``ok`` lines, errors = ``error``
lines, dropped = ``dropped`` lines). ``sequence`` counts judged items (ok +
error): a PLC sees a new result when it changes.
"""
from __future__ import annotations

import os
from collections import deque

import numpy as np

# Modbus verdict codes; OPC UA carries the same as text.
VERDICT_CODES = {None: 0, "good": 1, "defective": 2, "error": 3}
STATES = ("starting", "running", "stopped")


def model_info(model, path):
    meta = getattr(model, "meta", None) or {}
    return {"model_name": str(meta.get("run") or os.path.basename(str(path))),
            "model_version": str(meta.get("model_version") or ""),
            "model_task": str(getattr(model, "task", None) or meta.get("task") or ""),
            "threshold": float(getattr(model, "threshold", meta.get("threshold", 0.5)) or 0.0),
            "labels": list(getattr(model, "labels", None) or meta.get("labels") or [])}


class LineState:
    """Counters and the last result, updated from each record; ``snapshot()`` is a plain dict."""

    def __init__(self, model=None, model_path="", latency_window=1000):
        self.sequence = self.inspected = self.passed = self.defective = self.errors = self.dropped = 0
        self.handled = 0  # every record (ok, error, dropped): what the soak compares with the log
        self.last = {"verdict": None, "score": None, "type": None, "type_prob": None, "image": "",
                     "source": "", "time": "", "latency_ms": None}
        self.state = "starting"
        self._lat = deque(maxlen=latency_window)
        self.model = model_info(model, model_path)

    def set_model(self, model, path):
        self.model = model_info(model, path)

    def apply_event(self, record, current_model, default_path=""):
        """The service events the line's state follows ("start", "model_reloaded"): the event's name when
        it changed the state (the caller publishes), else None."""
        name = record.get("event")
        if name == "start":
            self.state = "running"
        elif name == "model_reloaded":
            self.set_model(current_model(), record.get("model") or default_path)
        else:
            return None
        return name

    def type_index(self, name):
        """Position of the defect type in the model's labels (0 = none/good); 65535 for a type not in them."""
        if not name:
            return 0
        labels = self.model["labels"]
        return labels.index(name) if name in labels else 65535

    def add(self, record):
        status = record.get("status")
        self.handled += 1
        if status == "dropped":
            self.dropped += 1
            return
        self.sequence += 1
        if status == "ok":
            self.inspected += 1
            if record.get("verdict") == "defective":
                self.defective += 1
            else:
                self.passed += 1
            if record.get("latency_ms") is not None:
                self._lat.append(float(record["latency_ms"]))
        else:
            self.errors += 1
        src = str(record.get("source") or "")
        self.last = {"verdict": record.get("verdict") if status == "ok" else "error",
                     "score": record.get("score"), "type": record.get("type"), "type_prob": record.get("type_prob"),
                     "image": os.path.basename(src) if os.sep in src else src, "source": src,
                     "time": record.get("time") or "", "latency_ms": record.get("latency_ms")}

    def latencies(self):
        return np.fromiter(self._lat, np.float64)

    def latency_p50(self):
        return float(np.median(np.fromiter(self._lat, np.float64))) if self._lat else 0.0

    def snapshot(self):
        return {"sequence": self.sequence, "inspected": self.inspected, "passed": self.passed,
                "defective_count": self.defective, "errors": self.errors, "dropped": self.dropped,
                "latency_p50_ms": round(self.latency_p50(), 3), "state": self.state, **self.last,
                **{k: v for k, v in self.model.items() if k != "labels"},
                "type_index": self.type_index(self.last["type"]) if self.last["verdict"] != "error" else 0,
                "verdict_code": VERDICT_CODES.get(self.last["verdict"], 0)}
