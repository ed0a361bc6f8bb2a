"""The inspection loop: source -> bounded queue -> model -> log, rejects, hook, MQTT, metrics.

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
disconnects and reloads are lines with ``"event"`` instead.
"""
from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge.errors import EdgeInspectError, ImageError
from edge.watch.log import JsonlLog, NullLog, now_iso, read_log
from edge.watch.sources import FolderSource, SourceDisconnected, SourceError, make_source


@dataclass
class WatchConfig:
    model: str
    source: str
    existing: str = "process"
    poll: float = 0.2
    settle_timeout: float = 10.0
    drop: str | None = None          # None: "oldest" for live sources, "none" for folders/video files
    queue: int = 8
    log: str | None = None
    log_max_mb: float = 10.0
    log_keep: int = 5
    rejects: str | None = None
    on_defect: str | None = None
    hook_timeout: float = 2.0
    mqtt: str | None = None
    topic: str = "edgeinspect/line1"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    drift_window: int = 100
    backend: str | None = None
    threads: int | None = None
    device: str | None = None
    labels: str | None = None
    max_items: int | None = None
    fps: float | None = None         # pace a video file (simulate a camera); None: as fast as inference
    reload_interval: float = 1.0
    retry_initial: float = 0.5
    retry_max: float = 30.0
    status_every: float = 10.0
    quiet: bool = False
    extra: dict = field(default_factory=dict)


class Ring:
    """Fixed-size float ring buffer (no growth in a service that runs for months)."""

    def __init__(self, n=65536):
        self.buf = np.zeros(n, np.float64)
        self.n = 0

    def add(self, x):
        self.buf[self.n % self.buf.size] = x
        self.n += 1

    def values(self, last=None):
        k = min(self.n, self.buf.size)
        if last is not None:
            k = min(k, last)
        if k == 0:
            return self.buf[:0]
        idx = (np.arange(self.n - k, self.n) % self.buf.size)
        return self.buf[idx]

    def pct(self, q, last=None):
        v = self.values(last)
        return float(np.percentile(v, q)) if v.size else None


def _file_sig(path):
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _sha12(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def history(log_path):
    """From a previous run's log: (paths already handled, paths queued but not inspected at the last stop)."""
    done, carry = set(), set()
    if not log_path:
        return done, carry
    for rec in read_log(log_path):
        src = rec.get("source")
        if rec.get("status") in ("ok", "error") and src:
            done.add(src)
            carry.discard(src)
        elif rec.get("event") == "stop":
            carry.update(rec.get("pending") or [])
    return done, carry - done


class Service:
    def __init__(self, cfg: WatchConfig, source=None, echo=None, status_stream=None):
        self.cfg = cfg
        self.echo = echo or (lambda msg: print(msg, flush=True))
        self.status_stream = status_stream if status_stream is not None else sys.stderr
        self.stop_event = threading.Event()
        self.stop_reason = None
        self.fatal = None
        self.lock = threading.Lock()
        self.counts = dict(sent=0, ok=0, passed=0, failed=0, errors=0, dropped=0, disconnects=0,
                           reconnects=0, reloads=0, reload_failures=0, rejects=0, reject_errors=0)
        self.latency = Ring()
        self.e2e = Ring()
        self.e2e_durable = Ring()
        self._model_path = os.path.abspath(cfg.model)
        self.model, self.model_sha, self._model_sig = self._load_model()
        self._pending_model = None
        self._failed_sig = None
        done, carry = history(cfg.log)
        self.source = source or make_source(cfg.source, existing=cfg.existing, done=done, poll=cfg.poll,
                                            settle_timeout=cfg.settle_timeout, size=self.model.input_size,
                                            realtime_fps=cfg.fps)
        if isinstance(self.source, FolderSource) and carry:
            self.source._seen.difference_update(carry)  # queued at the last stop: they still need inspecting
        self.source_kind = getattr(self.source, "kind", "custom")
        self.drop = cfg.drop or ("oldest" if getattr(self.source, "live", False) else "none")
        if self.drop not in ("oldest", "none"):
            raise EdgeInspectError(f"--drop {self.drop}: use 'oldest' or 'none'")
        self.q = deque()
        self.qmax = max(1, int(cfg.queue))
        self.cond = threading.Condition()
        self.reader_done = threading.Event()
        self._carry = carry
        self.sinks_closed = False
        self.log = (JsonlLog(cfg.log, max_bytes=int(cfg.log_max_mb * 1024 * 1024), keep=cfg.log_keep)
                    if cfg.log else NullLog())
        self.rejects = self.hook = self.mqtt = self.metrics = None
        try:
            self._open_sinks()
        except BaseException:
            self._close_sinks()
            raise
        from edge.watch.metrics import DriftTracker

        self.drift = DriftTracker(cfg.drift_window)
        self.t_start = None
        self._last_status = 0.0
        self._status_len = 0
        self.tty = bool(getattr(self.status_stream, "isatty", lambda: False)())

    # -- set-up -------------------------------------------------------------------------------------
    def _load_model(self, path=None):
        from edge.runtime import EdgeModel

        path = path or self._model_path
        sig = _file_sig(path) if os.path.exists(path) else None
        m = EdgeModel(path, backend=self.cfg.backend, threads=self.cfg.threads, device=self.cfg.device,
                      labels=self.cfg.labels)
        m.warmup()
        return m, _sha12(path), sig

    def _open_sinks(self):
        cfg = self.cfg
        if cfg.rejects:
            from edge.watch.rejects import RejectStore

            self.rejects = RejectStore(cfg.rejects, threshold=getattr(self.model, "threshold", 0.5))
        if cfg.mqtt:
            from edge.watch.mqtt import MqttSink

            self.mqtt = MqttSink(cfg.mqtt, cfg.topic)
        if cfg.metrics_port is not None:
            from edge.watch.metrics import Metrics

            self.metrics = Metrics(cfg.metrics_port, cfg.metrics_host)
            self.metrics.set_model(self._model_path, self.model.meta)
        if cfg.on_defect:
            from edge.watch.hook import HookRunner

            self.hook = HookRunner(cfg.on_defect, timeout=cfg.hook_timeout, on_event=self._hook_event)

    def _hook_event(self, rec):
        if rec.get("event") == "hook_timeout" and self.metrics:
            self.metrics.hook_timeouts.inc()
        self.event(rec.pop("event"), **rec)

    def _close_sinks(self):
        if self.sinks_closed:
            return
        self.sinks_closed = True
        for sink in (self.hook, self.mqtt, self.metrics):
            if sink is not None:
                try:
                    sink.close()
                except Exception:
                    pass
        self.log.close()

    # -- recording ----------------------------------------------------------------------------------
    def event(self, name, **fields):
        self.log.write({"time": now_iso(), "event": name, **fields})

    def _count(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def _record_dropped(self, item, reason):
        self._count("dropped")
        if self.metrics:
            self.metrics.dropped.inc()
        self.log.write({"time": now_iso(), "source": item.source_id, "status": "dropped", "error": reason,
                        "model_version": self.model.meta.get("model_version"), "model_sha": self.model_sha})

    # -- reader thread ------------------------------------------------------------------------------
    def _enqueue(self, item):
        dropped = None
        with self.cond:
            while len(self.q) >= self.qmax and self.drop == "none" and not self.stop_event.is_set():
                self.cond.wait(0.1)
            if len(self.q) >= self.qmax and self.drop == "oldest":
                dropped = self.q.popleft()
            self.q.append(item)
            self.cond.notify_all()
        if dropped is not None:
            self._record_dropped(dropped, f"queue full ({self.qmax}): inference slower than the source")

    def _reader(self):
        backoff = self.cfg.retry_initial
        down_since = None
        try:
            while not self.stop_event.is_set():
                try:
                    item = self.source.read(self.stop_event)
                except SourceError as exc:
                    self.fatal = exc
                    self.stop_event.set()
                    return
                except Exception as exc:  # SourceDisconnected, or anything a camera driver throws
                    msg = str(exc) if isinstance(exc, SourceDisconnected) else f"{type(exc).__name__}: {exc}"
                    self._count("disconnects")
                    if self.metrics:
                        self.metrics.disconnects.inc()
                    if down_since is None:
                        down_since = time.monotonic()
                    self.event("source_disconnected", source=self.source.id, error=msg, retry_in_s=round(backoff, 3))
                    try:
                        self.source.close()
                    except Exception:
                        pass
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, self.cfg.retry_max)
                    continue
                if item is None:
                    return
                if down_since is not None:
                    self._count("reconnects")
                    self.event("source_reconnected", source=self.source.id,
                               down_s=round(time.monotonic() - down_since, 3))
                    down_since, backoff = None, self.cfg.retry_initial
                self._count("sent")
                self._enqueue(item)
        finally:
            self.reader_done.set()
            with self.cond:
                self.cond.notify_all()

    # -- model reload -------------------------------------------------------------------------------
    def _watch_model(self):
        while not self.stop_event.wait(self.cfg.reload_interval):
            try:
                sig = _file_sig(self._model_path)
            except OSError:
                continue  # mid-replacement, or removed: keep the loaded model
            if sig == self._model_sig or sig == self._failed_sig or self._pending_model is not None:
                continue
            try:
                loaded = self._load_model()
            except Exception as exc:  # ModelError, BackendError, or a half-written flatbuffer
                self._failed_sig = sig
                self._count("reload_failures")
                if self.metrics:
                    self.metrics.reloads.labels(result="failed").inc()
                self.event("model_reload_failed", model=self._model_path,
                           error=f"{exc}; still running model {self.model_sha}")
                continue
            self._pending_model = loaded

    def _swap_model(self):
        pending, self._pending_model = self._pending_model, None
        if pending is None:
            return
        old = self.model_sha
        self.model, self.model_sha, self._model_sig = pending
        self._count("reloads")
        self.drift.reset()  # a new model has its own score distribution
        if self.metrics:
            self.metrics.reloads.labels(result="ok").inc()
            self.metrics.set_model(self._model_path, self.model.meta)
        self.event("model_reloaded", model=self._model_path, model_version=self.model.meta.get("model_version"),
                   model_sha=self.model_sha, previous_sha=old)

    # -- inspection ---------------------------------------------------------------------------------
    def _predict(self, item):
        m = self.model
        if item.rgb is not None:
            rgb = item.rgb
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
                # A decoder that gave up mid-frame can hand over an empty or torn buffer.
                raise ImageError(item.source_id, f"invalid frame {rgb.dtype} {rgb.shape}", "check the camera/stream")
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
            if defective and self.rejects is not None:
                try:
                    rec["reject"] = str(self.rejects.save(item, pred))
                    self._count("rejects")
                except Exception as exc:
                    self._count("reject_errors")
                    rec["reject_error"] = f"cannot save reject: {exc}"
        e2e = (time.monotonic() - item.t_in) * 1e3
        rec["e2e_ms"] = round(e2e, 3)
        rec["time"] = now_iso()
        self.log.write(rec)
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
            if not defective:
                self.drift.add(pred.score)
        if self.metrics:
            m = self.metrics
            (m.errors if pred is None else m.failed if defective else m.passed).inc()
            m.e2e.observe(e2e / 1e3)
            if pred is not None:
                m.latency.observe(pred.latency_ms / 1e3)
                m.drift.set(self.drift.drift)
                m.recent_score.set(self.drift.recent_mean)
            m.queue.set(len(self.q))
        if self.mqtt is not None:
            self.mqtt.publish(rec)
        if defective and self.hook is not None:
            self.hook.submit(rec)
        return rec

    # -- status -------------------------------------------------------------------------------------
    def status_line(self):
        c = dict(self.counts)
        el = max(time.monotonic() - (self.t_start or time.monotonic()), 1e-9)
        p50, p95 = self.latency.pct(50, 1000), self.latency.pct(95, 1000)
        lat = f"{p50:.1f}/{p95:.1f} ms" if p50 is not None else "-"
        return (f"watch {self.source_kind}: {(c['ok'] + c['errors']) / el:.1f}/s  pass {c['passed']}  "
                f"fail {c['failed']}  err {c['errors']}  drop {c['dropped']}  p50/p95 {lat}  q {len(self.q)}")

    def _status_tick(self, force=False):
        if self.cfg.quiet:
            return
        now = time.monotonic()
        every = 0.5 if self.tty else self.cfg.status_every
        if not force and now - self._last_status < every:
            return
        self._last_status = now
        line = self.status_line()
        try:
            if self.tty:
                self.status_stream.write("\r\x1b[K" + line[:200])
            else:
                self.status_stream.write(line + "\n")
            self.status_stream.flush()
        except (OSError, ValueError):
            pass

    def _clear_status(self):
        if self.tty and not self.cfg.quiet:
            try:
                self.status_stream.write("\r\x1b[K")
                self.status_stream.flush()
            except (OSError, ValueError):
                pass

    # -- run ----------------------------------------------------------------------------------------
    def request_stop(self, reason="stop requested"):
        self.stop_reason = self.stop_reason or reason
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()

    def _next(self, timeout=0.2):
        with self.cond:
            if not self.q and not self.reader_done.is_set():
                self.cond.wait(timeout)
            if self.q:
                item = self.q.popleft()
                self.cond.notify_all()
                return item
        return None

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
        try:
            try:
                self.source.open()
            except SourceError:
                raise
            except Exception:
                pass  # a live source that is down at start: the reader retries with back-off
            self.event("start", model=self._model_path, model_version=self.model.meta.get("model_version"),
                       model_sha=self.model_sha, task=getattr(self.model, "task", None), source=self.source.id,
                       source_kind=self.source_kind, drop=self.drop, queue=self.qmax,
                       skipped_existing=getattr(self.source, "skipped_existing", 0), pid=os.getpid())
            reader = threading.Thread(target=self._reader, name="edgeinspect-reader", daemon=True)
            watcher = threading.Thread(target=self._watch_model, name="edgeinspect-model-watch", daemon=True)
            reader.start()
            watcher.start()
            while not self.stop_event.is_set():
                if self._pending_model is not None:
                    self._swap_model()
                item = self._next()
                if item is None:
                    if self.reader_done.is_set() and not self.q:
                        self.stop_reason = self.stop_reason or "source ended"
                        break
                    self._status_tick()
                    continue
                self.inspect(item)
                self._status_tick()
                if cfg.max_items and self.counts["ok"] + self.counts["errors"] >= cfg.max_items:
                    self.stop_reason = self.stop_reason or f"--max-items {cfg.max_items} reached"
                    break
            self.stop_event.set()
            with self.cond:
                self.cond.notify_all()
            reader.join(5.0)
            if self.fatal is not None:
                raise self.fatal
            pending = self._drain()
            if self.hook is not None:
                self.hook.close()  # let queued hooks run (each bounded by --hook-timeout) so they are counted
            summary = self.summary()
            self.event("stop", reason=self.stop_reason, pending=pending, **{k: v for k, v in summary.items()
                                                                           if k not in ("log",)})
            return summary
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            self._clear_status()
            try:
                self.source.close()
            except Exception:
                pass
            self._close_sinks()

    def _drain(self):
        """Items still queued at stop: live frames are logged as dropped; files stay for the next run."""
        pending = []
        with self.cond:
            left, self.q = list(self.q), deque()
        for item in left:
            if isinstance(self.source, FolderSource) and item.path:
                pending.append(item.path)
            else:
                self._record_dropped(item, f"service stopped ({self.stop_reason}) before inspection")
        return pending

    def summary(self):
        c = dict(self.counts)
        el = time.monotonic() - (self.t_start or time.monotonic())
        rnd = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {
            **c, "inspected": c["ok"], "elapsed_s": round(el, 3),
            "rate_per_s": round((c["ok"] + c["errors"]) / el, 3) if el > 0 else None,
            "latency_ms": {"p50": rnd(self.latency.pct(50)), "p95": rnd(self.latency.pct(95))},
            "e2e_ms": {"p50": rnd(self.e2e.pct(50)), "p95": rnd(self.e2e.pct(95))},
            "e2e_durable_ms": {"p50": rnd(self.e2e_durable.pct(50)), "p95": rnd(self.e2e_durable.pct(95))},
            "model_sha": self.model_sha, "log": str(self.log.path) if self.log.path else None,
            "log_lines": self.log.lines, "log_rotations": self.log.rotations,
            "hook": dict(self.hook.counts) if self.hook else None,
            "mqtt": {"published": self.mqtt.published, "failed": self.mqtt.failed} if self.mqtt else None,
        }


def format_summary(s):
    lat, e2e = s["latency_ms"], s["e2e_ms"]
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        f"watch summary: {s['sent']} received, {s['inspected']} inspected ({s['passed']} pass, {s['failed']} fail), "
        f"{s['errors']} errors, {s['dropped']} dropped in {s['elapsed_s']:.1f} s ({s['rate_per_s'] or 0:.1f}/s)",
        f"  latency p50/p95 {fmt(lat['p50'])}/{fmt(lat['p95'])} ms (inference), "
        f"{fmt(e2e['p50'])}/{fmt(e2e['p95'])} ms (frame in -> logged)",
        f"  disconnects {s['disconnects']}, model reloads {s['reloads']} (failed {s['reload_failures']}), "
        f"rejects saved {s['rejects']}",
    ]
    if s.get("hook"):
        h = s["hook"]
        lines.append(f"  hook: {h['run']} run, {h['timeouts']} timed out, {h['failed']} failed, {h['skipped']} skipped")
    if s.get("log"):
        lines.append(f"  log: {s['log']} ({s['log_lines']} lines this run)")
    return "\n".join(lines)
