"""Where results go besides the JSONL log: one module per output, all behind the :class:`Sink` protocol.

The service calls ``handle(record, prediction, item)`` for every item record
(status ok, error or dropped; ``prediction`` is None unless the model judged
the item), ``event(record)`` for event lines (start, reloads, disconnects,
hook timeouts ...) and ``close()`` once at the stop. Sinks with
``before_log = True`` run before the record is written and may add fields to
it (the reject store adds the saved file's path); the others see the record
as logged. A sink that raises is logged and counted and never stops
inspection: the service isolates each one.

A new output is one new module here with ``from_config(cfg, ctx)`` returning
the sink (or None when its option is not set), plus its name in ``MODULES``.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from edge.watch.log import now_iso

# Order matters: sinks that add to the record (before_log) come first.
MODULES = ("rejects", "prometheus", "mqtt", "hook", "opcua", "modbus", "webhook", "ui")


@runtime_checkable
class Sink(Protocol):
    name: str
    before_log: bool

    def handle(self, record: dict, prediction, item) -> None: ...

    def event(self, record: dict) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """Defaults for the optional parts of the protocol."""

    name = "sink"
    before_log = False

    def handle(self, record, prediction, item):
        pass

    def event(self, record):
        pass

    def summary(self):
        return None

    def close(self):
        pass


@dataclass
class SinkContext:
    """What sinks may ask the service for (never the service itself)."""

    model: Callable[[], Any]                 # the model in use now (changes on reload)
    model_path: str
    event: Callable[..., None]               # event(name, **fields): a line in the result log
    queue_depth: Callable[[], int]


class SinkSet:
    """The open sinks, each isolated: an exception is counted for that sink and logged, never raised."""

    def __init__(self, sinks=(), log=None):
        self.sinks = list(sinks)
        self.log = log
        self.errors = {}  # sink name -> exceptions caught
        self.closed = False
        self._lock = threading.Lock()

    @classmethod
    def open(cls, cfg, ctx, log):
        """The sinks ``cfg`` asks for; on a failure the ones already open are closed before raising."""
        out = cls([], log)
        try:
            for name in MODULES:
                sink = importlib.import_module(f"edge.watch.sinks.{name}").from_config(cfg, ctx)
                if sink is not None:
                    out.sinks.append(sink)
        except BaseException:
            out.close()
            raise
        return out

    def get(self, name):
        return next((s for s in self.sinks if s.name == name), None)

    def __iter__(self):
        return iter(self.sinks)

    def _call(self, sink, method, *args):
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # noqa: BLE001 - a broken output must not stop inspection
            with self._lock:
                self.errors[sink.name] = self.errors.get(sink.name, 0) + 1
            rec = args[0] if args and isinstance(args[0], dict) else {}
            error = f"{type(exc).__name__}: {exc}"
            if method == "handle" and sink.before_log:
                rec[f"{sink.name}_error"] = f"{sink.name} failed: {error}"
            try:
                if self.log is not None:
                    self.log.write({"time": now_iso(), "event": "sink_error", "sink": sink.name, "during": method,
                                    "source": rec.get("source"), "error": error})
            except Exception:  # noqa: BLE001 - the log itself is failing; the count above still holds
                pass

    def handle(self, record, prediction, item, before_log):
        if not self.closed:
            for sink in self.sinks:
                if sink.before_log == before_log:
                    self._call(sink, "handle", record, prediction, item)

    def event(self, record):
        if not self.closed:
            for sink in self.sinks:
                self._call(sink, "event", record)

    def summaries(self):
        return {s.name: s.summary() for s in self.sinks if hasattr(s, "summary")}

    def close(self):
        if not self.closed:
            self.closed = True
            for sink in self.sinks:
                self._call(sink, "close")
