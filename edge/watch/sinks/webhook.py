"""``--webhook URL``: one JSON POST per result (``--webhook-on defective``: per defective part only).

Posts go out from a worker thread through a bounded queue, so a slow or dead
endpoint never delays inspection. A failed post (connection refused,
timeout, HTTP 5xx, 408 or 429) is retried with exponential back-off
(``backoff``, 2x, 4x ...) up to ``retries`` times; other HTTP errors are not
retried. Every result handed to the sink ends in exactly one count:
``sent`` (2xx), ``failed`` (retries used up or refused), ``dropped`` (queue
full) or ``unsent`` (still queued at the stop). An outage is one event in the
log when it starts and one when posts get through again.
"""
from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from edge.errors import EdgeInspectError
from edge.watch.sinks import BaseSink

RETRY_STATUS = {408, 429}


class WebhookError(EdgeInspectError):
    pass


def check_url(url):
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"--webhook {url}: expected an http:// or https:// URL, e.g. http://mes.local/api/results")
    return str(url)


class WebhookSink(BaseSink):
    name = "webhook"
    stop_budget = 3.0  # seconds close() keeps posting what is queued

    def __init__(self, url, on="all", timeout=2.0, retries=3, backoff=0.5, max_queue=1000, on_event=None):
        self.url = check_url(url)
        if on not in ("all", "defective"):
            raise WebhookError(f"--webhook-on {on}: use 'all' or 'defective'")
        self.on, self.timeout, self.retries, self.backoff = on, float(timeout), int(retries), float(backoff)
        self.on_event = on_event or (lambda name, **fields: None)
        self.q = queue.Queue(maxsize=max_queue)
        self.counts = {"queued": 0, "sent": 0, "failed": 0, "dropped": 0, "unsent": 0, "retries": 0}
        self._lock = threading.Lock()
        self._down = False
        self._closing = threading.Event()
        self._deadline = None
        self._thread = threading.Thread(target=self._work, name="edgeinspect-webhook", daemon=True)
        self._thread.start()

    def _count(self, key, n=1):
        with self._lock:
            self.counts[key] += n

    def handle(self, record, prediction, item):
        status = record.get("status")
        if status == "dropped" or (self.on == "defective" and record.get("verdict") != "defective"):
            return
        self._count("queued")
        try:
            self.q.put_nowait(dict(record))
        except queue.Full:
            self._count("dropped")

    def _post(self, body):
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "edgeinspect-watch"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            r.read()
            return r.status

    def _deliver(self, record):
        body = json.dumps(record, default=str).encode()
        for attempt in range(self.retries + 1):
            try:
                self._post(body)
                if self._down:
                    self._down = False
                    self.on_event("webhook_recovered", url=self.url, **self.summary())
                self._count("sent")
                return
            except urllib.error.HTTPError as exc:
                error, retry = f"HTTP {exc.code}", exc.code >= 500 or exc.code in RETRY_STATUS
            except (OSError, ValueError) as exc:  # refused, reset, timeout (socket.timeout is an OSError)
                error, retry = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}", True
            if not self._down:
                self._down = True
                self.on_event("webhook_unreachable", url=self.url,
                              error=f"--webhook {self.url}: {error}; retrying with back-off, losses are counted")
            if not retry or attempt == self.retries:
                break
            wait = self.backoff * 2 ** attempt
            if self._deadline is not None and time.monotonic() + wait > self._deadline:
                break  # stopping: no time left for this one
            self._count("retries")
            if self._closing.wait(wait) and self._deadline is not None and time.monotonic() > self._deadline:
                break
        self._count("failed")

    def _work(self):
        while True:
            record = self.q.get()
            if record is None:
                return
            if self._deadline is not None and time.monotonic() > self._deadline:
                self._count("unsent")  # stopping: past the budget, so never posted (and counted)
                continue
            try:
                self._deliver(record)
            except Exception:  # noqa: BLE001 - a bug here must not kill the worker and strand the queue
                self._count("failed")

    def summary(self):
        with self._lock:
            return dict(self.counts)

    def close(self, wait=None):
        if self._deadline is not None:
            return
        self._deadline = time.monotonic() + (self.stop_budget if wait is None else float(wait))
        try:
            self.q.put(None, timeout=max(0.0, self._deadline - time.monotonic()) + 0.5)
        except queue.Full:
            pass
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + self.timeout + 1)
        self._closing.set()
        self._thread.join(self.timeout + 1)
        left = 0
        while True:  # what the worker never reached (it is gone or stuck in one post)
            try:
                if self.q.get_nowait() is not None:
                    left += 1
            except queue.Empty:
                break
        self._count("unsent", left)


def from_config(cfg, ctx):
    if not cfg.webhook:
        return None
    return WebhookSink(cfg.webhook, cfg.webhook_on, cfg.webhook_timeout, cfg.webhook_retries, cfg.webhook_backoff,
                       on_event=ctx.event)
