"""``--on-defect CMD``: a shell command run for each defective part, off the inspection loop.

Commands run one at a time on a worker thread with a bounded queue, so a slow
or hung hook never delays inspection: past ``timeout`` seconds its whole
process group is killed and the timeout counted; when the queue is full the
call is skipped and counted. The result is passed as ``EDGEINSPECT_*``
environment variables and as one JSON object on stdin.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time

from edge.watch.sinks import BaseSink


def hook_env(result: dict) -> dict:
    env = dict(os.environ)
    for k, v in result.items():
        if v is None or isinstance(v, (dict, list)):
            continue
        env[f"EDGEINSPECT_{k.upper()}"] = str(v)
    return env


class HookRunner(BaseSink):
    name = "hook"
    stop_budget = 5.0  # seconds close() lets queued hooks start (TimeoutStopSec in the unit is 30)

    def __init__(self, command, timeout=2.0, on_event=None, max_queue=64):
        self.command = command
        self.timeout = float(timeout)
        self.on_event = on_event or (lambda record: None)
        self.q = queue.Queue(maxsize=max_queue)
        self.counts = {"run": 0, "ok": 0, "failed": 0, "timeouts": 0, "skipped": 0}
        self._lock = threading.Lock()
        self._closed = False
        self._deadline = None  # set by close(): hooks still queued after it are skipped, not run
        self._thread = threading.Thread(target=self._work, name="edgeinspect-hook", daemon=True)
        self._thread.start()

    def _count(self, key):
        with self._lock:
            self.counts[key] += 1

    def handle(self, record, prediction, item):
        if prediction is not None and prediction.verdict == "defective":
            self.submit(record)

    def summary(self):
        with self._lock:
            return dict(self.counts)

    def submit(self, result: dict) -> bool:
        try:
            self.q.put_nowait(result)
            return True
        except queue.Full:
            self._count("skipped")
            self.on_event({"event": "hook_skipped", "source": result.get("source"),
                           "error": f"hook queue full ({self.q.maxsize}); the hook is slower than defects arrive"})
            return False

    def _work(self):
        while True:
            result = self.q.get()
            if result is None:
                return
            try:
                if self._deadline is not None and time.monotonic() > self._deadline:
                    self._count("skipped")  # stopping: past the drain budget, so never run (and say so)
                    self.on_event({"event": "hook_skipped", "source": result.get("source"),
                                   "error": f"service stopping: hook not run within the {self.stop_budget:g} s drain"})
                else:
                    self._run(result)
            finally:
                self.q.task_done()

    def _run(self, result):
        self._count("run")
        # stderr goes to a file, not a pipe: a command that leaves a child behind ('setsid ... &') would
        # hold a pipe open, and waiting for its end would hang this worker for good.
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(self.command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=err, env=hook_env(result), start_new_session=True)
            except OSError as exc:
                self._count("failed")
                self.on_event({"event": "hook_error", "source": result.get("source"),
                               "error": f"cannot start hook: {exc}"})
                return
            try:
                proc.stdin.write(json.dumps(result).encode() + b"\n")
                proc.stdin.close()
            except OSError:  # BrokenPipe: the hook did not read stdin; that is allowed
                pass
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started in its group
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass  # unkillable (D state): counted as a timeout all the same, the worker goes on
                self._count("timeouts")
                self.on_event({"event": "hook_timeout", "source": result.get("source"),
                               "error": f"hook killed after {self.timeout:g} s: {self.command}"})
                return
            if proc.returncode == 0:
                self._count("ok")
                return
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
        self._count("failed")
        self.on_event({"event": "hook_error", "source": result.get("source"),
                       "error": f"hook exited {proc.returncode}: {tail[0][:200]}"})

    def close(self, wait=None):
        """Stop after the queued hooks that start within ``wait`` seconds (default ``stop_budget``); the
        rest are counted as skipped. Bounded by wait + one --hook-timeout, so a SIGTERM stop stays well
        inside systemd's TimeoutStopSec even with a full queue of slow hooks."""
        if self._closed:
            return
        self._closed = True
        wait = self.stop_budget if wait is None else float(wait)
        self._deadline = time.monotonic() + wait
        try:
            self.q.put(None, timeout=wait + self.timeout + 1)
        except queue.Full:
            return
        self._thread.join(wait + self.timeout + 6)


def from_config(cfg, ctx):
    if not cfg.on_defect:
        return None

    def on_event(rec):
        rec = dict(rec)
        ctx.event(rec.pop("event"), **rec)

    return HookRunner(cfg.on_defect, timeout=cfg.hook_timeout, on_event=on_event)
