"""``--ui-port``: the live page for the operator, served by ``watch`` itself (:mod:`ui_http`).

This sink keeps what the page shows: the counters (:class:`LineState`, the
same as OPC UA and Modbus), rates, the score drift, the last results and the
last rejects. On the inspection loop it only keeps references (the frame
array, the anomaly map) in bounded deques; thumbnails and heat maps are
encoded on the HTTP thread when the page asks for them, and cached while the
result is on the page. Read-only; bound to 127.0.0.1 unless ``--listen``,
and a ``--ui-token`` is required when it is exposed.
"""
from __future__ import annotations

import io
import os
import threading
import time
from collections import OrderedDict, deque

import numpy as np

from edge.errors import EdgeInspectError
from edge.watch.config import is_loopback
from edge.watch.log import now_iso
from edge.watch.sinks import BaseSink
from edge.watch.sinks.line_state import LineState
from edge.watch.stats import DriftTracker

RECENT = 12       # thumbnails on the page
REJECTS = 6       # rejects with heat maps
THUMB_PX = 160
HEAT_PX = 320
RATE_WINDOW_S = 10.0


class UiError(EdgeInspectError):
    pass


def _keepable(item):
    """The frame, or for a big one a strided copy at about twice the heat-map size: 18 full-HD frames kept
    for the page would hold >100 MB on a Pi, a strided copy costs a fraction of a millisecond (and an
    OpenCV frame is swapped to RGB on that copy only)."""
    a = getattr(item, "rgb", None)
    if a is None:
        a = getattr(item, "bgr", None)
    if not isinstance(a, np.ndarray) or a.ndim != 3 or not a.size:
        return None
    k = max(-(-max(a.shape[:2]) // (2 * HEAT_PX)), 1)
    pixels = getattr(item, "thumbnail_rgb", None)
    if pixels is not None:
        return pixels(k)
    return a if k == 1 else np.ascontiguousarray(a[::k, ::k])


class _Shown:
    """One result on the page: its record fields plus what is needed to draw it later."""

    __slots__ = ("seq", "info", "rgb", "path", "amap", "threshold")

    def __init__(self, seq, info, rgb, path, amap, threshold):
        self.seq, self.info, self.rgb, self.path, self.amap, self.threshold = seq, info, rgb, path, amap, threshold


class LivePage(BaseSink):
    name = "ui"

    def __init__(self, port, host="127.0.0.1", token=None, current_model=None, model_path="", drift_window=100,
                 on_event=None):
        if not is_loopback(host) and not token:
            raise UiError(f"--ui-port with --listen {host} exposes the page (and the parts' images) on the network: "
                          "set --ui-token SECRET (or EDGEINSPECT_UI_TOKEN) so only people with the token see it")
        self.current_model = current_model or (lambda: None)
        self.model_path = model_path
        self.token = token
        self.line = LineState(self.current_model(), model_path)
        self.drift = DriftTracker(drift_window)
        self.recent, self.rejects = deque(maxlen=RECENT), deque(maxlen=REJECTS)
        self._times = deque(maxlen=4096)  # monotonic time of each result, for the rate
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self.version = 0
        self._images = OrderedDict()  # (kind, seq) -> bytes, only for results still on the page
        self._img_lock = threading.Lock()
        self.images_encoded = 0
        self.on_event = on_event or (lambda name, **fields: None)
        from edge.watch.sinks.ui_http import serve

        try:
            self.server = serve(self, host, int(port))
        except OSError as exc:
            raise UiError(f"--ui-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                          "pick a free port or another --listen address") from None
        self.host, self.port = host, self.server.server_port

    # -- the inspection loop side: cheap --------------------------------------------------------------------
    def handle(self, record, prediction, item):
        with self._lock:
            self.line.add(record)
            if record.get("status") == "dropped":
                self.version += 1
                self.changed.notify_all()
                return
            self._times.append(time.monotonic())
            seq = self.line.sequence
            info = {k: record.get(k) for k in ("time", "status", "verdict", "score", "type", "type_prob", "latency_ms",
                                               "e2e_ms", "error", "reject")}
            info["image"] = self.line.last["image"]
            rgb = _keepable(item)
            amap = getattr(prediction, "anomaly_map", None) if prediction is not None else None
            shown = _Shown(seq, info, rgb, getattr(item, "path", None), amap, self.line.model["threshold"])
            self.recent.append(shown)
            if prediction is not None and prediction.verdict == "defective":
                self.rejects.append(shown)
            elif prediction is not None:
                self.drift.add(prediction.score)
            self.version += 1
            self.changed.notify_all()

    def event(self, record):
        with self._lock:
            name = self.line.apply_event(record, self.current_model, self.model_path)
            if name is None:
                return
            if name == "model_reloaded":
                self.drift.reset()  # a new model has its own score distribution
            self.version += 1
            self.changed.notify_all()

    # -- the HTTP side ---------------------------------------------------------------------------------------
    def state(self):
        """Everything the page shows, as JSON-able data."""
        with self._lock:
            snap = self.line.snapshot()
            now = time.monotonic()
            recent_n = sum(1 for t in self._times if now - t <= RATE_WINDOW_S)
            span = min(RATE_WINDOW_S, max(now - self._t0, 1e-3))
            recent = [self._entry(s) for s in reversed(self.recent)]
            rejects = [self._entry(s, heat=True) for s in reversed(self.rejects)]
            drift = {"drift": round(self.drift.drift, 6), "recent_mean": round(self.drift.recent_mean, 6),
                     "window": self.drift.window, "baseline_ready": len(self.drift.baseline) >= self.drift.window}
            version = self.version
            lat = self.line.latencies()
        return {"version": version, "time": now_iso(), "uptime_s": round(now - self._t0, 1), "state": snap["state"],
                "counts": {k: snap[k] for k in ("sequence", "inspected", "passed", "defective_count", "errors",
                                                "dropped")},
                "rate_per_s": round(recent_n / span, 2),
                "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                               "p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None},
                "model": {k: snap[k] for k in ("model_name", "model_version", "model_task", "threshold")},
                "drift": drift, "recent": recent, "rejects": rejects}

    @staticmethod
    def _entry(s, heat=False):
        e = {"seq": s.seq, **s.info, "thumb": f"img/{s.seq}.jpg" if s.rgb is not None or s.path else None}
        if heat:
            e["heat"] = f"heat/{s.seq}.png" if s.amap is not None else None
        return e

    def _find(self, seq):
        with self._lock:
            for s in list(self.recent) + list(self.rejects):
                if s.seq == seq:
                    return s
        return None

    def image(self, kind, seq):
        """Encoded bytes of a thumbnail (``img``) or heat map (``heat``), or None when it is gone."""
        key = (kind, seq)
        with self._img_lock:
            if key in self._images:
                return self._images[key]
        s = self._find(seq)
        if s is None or (kind == "heat" and s.amap is None):
            return None
        data = self._encode(kind, s)
        if data is None:
            return None
        with self._img_lock:
            self._images[key] = data
            self.images_encoded += 1
            live = {x.seq for x in list(self.recent) + list(self.rejects)}
            for k in [k for k in self._images if k[1] not in live]:
                del self._images[k]  # bounded: only what is on the page
        return data

    @staticmethod
    def _encode(kind, s):
        from PIL import Image

        rgb = None
        if s.path and os.path.isfile(s.path):
            try:
                from edge.imageio import load_image

                rgb = load_image(s.path)  # full size: the queued copy is at model size
            except Exception:  # noqa: BLE001 - replaced or unreadable since: use the frame we have
                rgb = None
        if rgb is None:
            rgb = s.rgb
        if rgb is None:
            return None
        buf = io.BytesIO()
        if kind == "heat":
            from edge.overlay import overlay_image

            im = overlay_image(np.ascontiguousarray(rgb), s.amap, threshold=s.threshold)
            if max(im.size) > HEAT_PX:
                im.thumbnail((HEAT_PX, HEAT_PX), Image.BILINEAR)
            elif max(im.size) < HEAT_PX // 2:  # tiny frames: nearest-neighbour up so the outline stays visible
                f = HEAT_PX // max(im.size)
                im = im.resize((im.size[0] * f, im.size[1] * f), Image.NEAREST)
            im.save(buf, format="PNG", compress_level=1)
        else:
            im = Image.fromarray(np.ascontiguousarray(rgb))
            if max(im.size) > THUMB_PX:
                im.thumbnail((THUMB_PX, THUMB_PX), Image.BILINEAR)
            im.save(buf, format="JPEG", quality=80)
        return buf.getvalue()

    def wait_change(self, version, timeout):
        with self._lock:
            if self.version == version:
                self.changed.wait(timeout)
            return self.version

    def summary(self):
        return {"handled": self.line.handled, "url": f"http://{self.host}:{self.port}/",
                "images_encoded": self.images_encoded, "requests": self.server.requests,
                "sse_clients": self.server.sse_clients}

    def close(self):
        with self._lock:
            self.line.state = "stopped"
            self.version += 1
            self.server.stop_event.set()
            self.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()


def from_config(cfg, ctx):
    if cfg.ui_port is None:
        return None
    return LivePage(cfg.ui_port, cfg.listen, cfg.ui_token, ctx.model, ctx.model_path, cfg.drift_window, ctx.event)
