"""The inspection loop: source -> bounded queue -> model -> log -> sinks (rejects, metrics, MQTT, hook).

Threads and why:

* the *reader* pulls items from the source at the source's pace, so a camera
  is never starved; when inference is slower, ``drop="oldest"`` discards the
  oldest queued frame (a live camera wants the newest part) and
  ``drop="none"`` makes the reader wait (folders and video files lose nothing
  by waiting). Every dropped frame is logged and counted.
* the *model watcher* notices a replaced model file (inode/mtime/size) and
  loads it off the loop; the main loop swaps it in between two items, so no
  item is dropped or inspected half by one model. A replacement that fails
  to load is logged and the old model keeps running.
* the *main* thread inspects one item at a time and writes its log line;
  SIGTERM/SIGINT set a flag checked between items, so the item in flight
  finishes, logs are flushed and a summary is printed.

The log accounts for every item the source delivered:
``sent == ok + error + dropped`` (lines with ``"status"``); events such as
disconnects and reloads are lines with ``"event"`` instead. Every other
output is a sink (:mod:`edge.watch.sinks`); one that fails is logged and
counted per sink and never stops inspection or costs the log line.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np

from edge.errors import EdgeInspectError, ImageError
from edge.watch.config import WatchConfig
from edge.watch.feed import Feed
from edge.watch.log import JsonlLog, LogError, NullLog, history, now_iso
from edge.watch.model_file import ModelWatcher, load_model
from edge.watch.sinks import SinkContext, SinkSet
from edge.watch.sources import SourceError, make_source
from edge.watch.stats import Ring
from edge.watch.status import STAGES, StatusLine, format_summary, status_line, summary

SWITCH_INTERVAL_S = 0.0005  # GIL hand-over: the inspection loop waits at most this long for an output thread

__all__ = ["Service", "WatchConfig", "format_summary"]


class Service:
    def __init__(self, cfg: WatchConfig, source=None, status_stream=None):
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.stop_reason = None
        self.lock = threading.Lock()
        self.counts = dict(sent=0, ok=0, passed=0, failed=0, errors=0, dropped=0, disconnects=0,
                           reconnects=0, reloads=0, reload_failures=0)
        self.latency, self.e2e, self.e2e_durable = Ring(), Ring(), Ring()
        self.stages = {k: Ring() for k in STAGES}  # where the inference time goes (status line, summary)
        self.model_path = os.path.abspath(cfg.model)
        self.model, self.model_sha, sig = self._load_model()
        self.model_watch = ModelWatcher(self.model_path, self._load_model, cfg.reload_interval,
                                        self._reload_failed, sig)
        done, carry = history(cfg.log)
        self._handled = dict(done)  # path -> file version logged: the memory a rotation must not lose
        self.source = source or make_source(cfg.source, existing=cfg.existing, done=done, keep=carry, poll=cfg.poll,
                                            settle_timeout=cfg.settle_timeout, size=self.model.input_size,
                                            realtime_fps=cfg.fps, recursive=cfg.recursive, decode_threads=cfg.decode_threads,
                                            on_ignored=lambda p, why: self.event("ignored", source=p, reason=why))
        self.source_kind = getattr(self.source, "kind", "custom")
        self.drop = cfg.drop or ("oldest" if getattr(self.source, "live", False) else "none")
        self.feed = Feed(self.source, cfg.queue, self.drop, self.stop_event, cfg.retry_initial, cfg.retry_max,
                         self._record_dropped, self.event, self._count)
        self.qmax = self.feed.qmax
        self.sinks = SinkSet()
        self.log_error = None  # the first failed write of the result log (disk full): stop, exit 3
        self.log = (JsonlLog(cfg.log, max_bytes=int(cfg.log_max_mb * 1024 * 1024), keep=cfg.log_keep)
                    if cfg.log else NullLog())
        ctx = SinkContext(model=lambda: self.model, model_path=self.model_path, event=self.event,
                          queue_depth=lambda: len(self.feed))
        if hasattr(self.source, "known"):
            self.log.on_rotate = self._checkpoint
        try:
            self.sinks = SinkSet.open(cfg, ctx, self.log)
        except BaseException:
            self.log.close()
            raise
        self.t_start = None
        self.status = StatusLine(status_stream if status_stream is not None else sys.stderr,
                                 every=cfg.status_every, quiet=cfg.quiet)

    @property
    def sink_errors(self):
        return self.sinks.errors

    def _load_model(self):
        c = self.cfg
        return load_model(self.model_path, backend=c.backend, threads=c.threads, device=c.device, labels=c.labels)

    # -- recording ----------------------------------------------------------------------------------
    def _write(self, rec):
        """One log line; a log that cannot be written (disk full) stops the service with one line."""
        try:
            self.log.write(rec)
            return True
        except LogError as exc:
            if self.log_error is None:
                self.log_error = str(exc)
                self.request_stop(f"result log unwritable: {exc}")
            return False

    def _checkpoint(self):
        """First line of each rotated-in log file: what was handled among the files still on disk, so
        a restart after the older files are rotated away does not inspect them again."""
        known = self.source.known()
        with self.lock:
            self._handled = {p: v for p, v in self._handled.items() if p in known}
            done = {p: list(v) if v else None for p, v in self._handled.items()}
        return {"event": "checkpoint", "done": done}

    def event(self, name, **fields):
        rec = {"time": now_iso(), "event": name, **fields}
        self._write(rec)
        self.sinks.event(rec)

    def _count(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def _record_dropped(self, item, reason):
        self._count("dropped")
        rec = {"time": now_iso(), "source": item.source_id, "status": "dropped", "error": reason,
               "model_version": self.model.meta.get("model_version"), "model_sha": self.model_sha}
        self._write(rec)
        self.sinks.handle(rec, None, item, before_log=False)

    # -- model reload -------------------------------------------------------------------------------
    def _reload_failed(self, exc):
        self._count("reload_failures")
        self.event("model_reload_failed", model=self.model_path, error=f"{exc}; still running model {self.model_sha}")

    def _swap_model(self):
        pending = self.model_watch.take()
        if pending is None:
            return
        old = self.model_sha
        self.model, self.model_sha, _ = pending
        self._count("reloads")
        self.event("model_reloaded", model=self.model_path, model_version=self.model.meta.get("model_version"),
                   model_sha=self.model_sha, previous_sha=old)

    # -- inspection ---------------------------------------------------------------------------------
    def _predict(self, item):
        m = self.model
        bgr = getattr(item, "bgr", None) if item.rgb is None else None  # an OpenCV frame kept as decoded
        frame = item.rgb if bgr is None else bgr
        if frame is not None:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
                # A decoder that gave up mid-frame can hand over an empty or torn buffer.
                raise ImageError(item.source_id, f"invalid frame {frame.dtype} {frame.shape}", "check the camera/stream")
            if bgr is not None:
                return m.predict_array(bgr, bgr=True)
            if item.path and item.rgb.shape[:2] == tuple(m.input_size):
                return m.predict_pixels(item.rgb, path=item.path)
            if item.path:
                return m.predict(item.path)  # reloaded model with another input size
            return m.predict_array(item.rgb)
        return m.predict(item.path)

    def inspect(self, item):
        rec = {"time": None, "source": item.source_id, "status": "ok", "verdict": None, "score": None,
               "type": None, "type_prob": None, "latency_ms": None, "e2e_ms": None,
               "model_version": self.model.meta.get("model_version"), "model_sha": self.model_sha, "error": None}
        if getattr(item, "version", None) is not None:
            rec["file_version"] = list(item.version)  # restart memory: which version of the file this was
        pred = None
        if item.error:
            rec["status"], rec["error"] = "error", item.error
        else:
            try:
                pred = self._predict(item)
            except EdgeInspectError as exc:
                rec["status"], rec["error"] = "error", str(exc)
            except Exception as exc:  # an interpreter failure on one frame must not end the service
                rec["status"], rec["error"] = "error", f"inference failed: {type(exc).__name__}: {exc}"
        defective = False
        if pred is not None:
            defective = pred.verdict == "defective"
            rec.update(verdict=pred.verdict, score=round(float(pred.score), 6), type=pred.defect_type,
                       type_prob=None if pred.type_prob is None else round(float(pred.type_prob), 6),
                       latency_ms=round(float(pred.latency_ms), 3))
        self.sinks.handle(rec, pred, item, before_log=True)
        e2e = (time.monotonic() - item.t_in) * 1e3
        rec["e2e_ms"] = round(e2e, 3)
        rec["time"] = now_iso()
        self._write(rec)  # on failure the part still reaches the sinks (a reject signal matters most)
        if item.path:
            with self.lock:
                self._handled[item.path] = getattr(item, "version", None)
        self.e2e_durable.add((time.monotonic() - item.t_in) * 1e3)  # including the fsync
        # Counted after the line is on disk: the metrics never claim more than the log holds.
        with self.lock:
            if pred is None:
                self.counts["errors"] += 1
            else:
                self.counts["ok"] += 1
                self.counts["failed" if defective else "passed"] += 1
        self.e2e.add(e2e)
        if pred is not None:
            self.latency.add(pred.latency_ms)
            for k, v in (pred.stages_ms or {}).items():
                self.stages[k].add(v)
        self.sinks.handle(rec, pred, item, before_log=False)
        return rec

    # -- run ----------------------------------------------------------------------------------------
    def request_stop(self, reason="stop requested"):
        self.stop_reason = self.stop_reason or reason
        self.stop_event.set()
        self.feed.wake()

    def run(self, install_signals=True):
        cfg = self.cfg
        old_handlers = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                self.request_stop(signal.Signals(signum).name)
                signal.signal(signum, old_handlers.get(signum, signal.SIG_DFL))  # a second signal stops hard
            for s in (signal.SIGTERM, signal.SIGINT):
                old_handlers[s] = signal.getsignal(s)
                signal.signal(s, handler)
        self.t_start = time.monotonic()
        # The outputs' threads (OPC UA, Modbus, page, webhook, MQTT) take the GIL in bursts; Python's 5 ms
        # default switch interval let one burst hold the inspection loop for up to 5 ms (soak: p95 1.9x).
        old_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(old_switch, SWITCH_INTERVAL_S))
        try:
            try:
                self.source.open()
            except SourceError:
                raise
            except Exception:
                pass  # a live source that is down at start: the reader retries with back-off
            self.event("start", model=self.model_path, model_version=self.model.meta.get("model_version"),
                       model_sha=self.model_sha, task=getattr(self.model, "task", None),
                       backend=getattr(self.model, "backend", None),
                       backend_choice=getattr(self.model, "backend_choice", None) or None, source=self.source.id,
                       source_kind=self.source_kind, drop=self.drop, queue=self.qmax,
                       skipped_existing=getattr(self.source, "skipped_existing", 0), pid=os.getpid())
            reader = threading.Thread(target=self.feed.run, name="edgeinspect-reader", daemon=True)
            watcher = threading.Thread(target=self.model_watch.run, args=(self.stop_event,),
                                       name="edgeinspect-model-watch", daemon=True)
            reader.start()
            watcher.start()
            while not self.stop_event.is_set():
                if self.model_watch.pending is not None:
                    self._swap_model()
                item = self.feed.get()
                if item is None:
                    if self.feed.done.is_set() and not len(self.feed):
                        self.stop_reason = self.stop_reason or "source ended"
                        break
                    self.status.tick(self.status_line)
                    continue
                self.inspect(item)
                self.status.tick(self.status_line)
                if cfg.max_items and self.counts["ok"] + self.counts["errors"] >= cfg.max_items:
                    self.stop_reason = self.stop_reason or f"--max-items {cfg.max_items} reached"
                    break
            self.stop_event.set()
            self.feed.wake()
            reader.join(5.0)
            if self.feed.fatal is not None:
                raise self.feed.fatal
            pending = self._drain()
            # Closing lets queued hooks run (each bounded by --hook-timeout) so the summary counts them.
            self.sinks.close()
            s = self.summary()
            self.event("stop", reason=self.stop_reason, pending=pending, **{k: v for k, v in s.items() if k != "log"})
            return s
        finally:
            sys.setswitchinterval(old_switch)
            for s, h in old_handlers.items():
                signal.signal(s, h)
            self.status.clear()
            try:
                self.source.close()
            except Exception:
                pass
            self.sinks.close()
            try:
                self.log.close()
            except (OSError, LogError):
                pass  # a full disk at the very end: the error is already in the summary

    def _drain(self):
        """Items still queued at stop: live frames are logged as dropped; files stay for the next run."""
        left = self.feed.take_all()
        resumable = getattr(self.source, "resumable", False)
        pending = [item.path for item in left if resumable and item.path]
        for item in left:
            if not (resumable and item.path):
                self._record_dropped(item, f"service stopped ({self.stop_reason}) before inspection")
        if resumable and hasattr(self.source, "unfinished"):
            pending += [p for p in self.source.unfinished() if p not in pending]
        return pending

    def status_line(self):
        return status_line(self)

    def summary(self):
        return summary(self)
