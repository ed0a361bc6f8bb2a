"""What the service tells people: the live status line, the stop summary and its text form."""
from __future__ import annotations

import time

STAGES = ("preprocess", "invoke", "postprocess")  # EdgeModel's Prediction.stages_ms


def _elapsed(svc):
    return time.monotonic() - (svc.t_start or time.monotonic())


def status_line(svc):
    c = dict(svc.counts)
    el = max(_elapsed(svc), 1e-9)
    p50, p95 = svc.latency.pct(50, 1000), svc.latency.pct(95, 1000)
    lat = f"{p50:.1f}/{p95:.1f} ms" if p50 is not None else "-"
    stages = [svc.stages[k].pct(50, 1000) for k in STAGES]
    split = "/".join(f"{v:.1f}" for v in stages) + " ms" if None not in stages else "-"
    return (f"watch {svc.source_kind}: {(c['ok'] + c['errors']) / el:.1f}/s  pass {c['passed']}  "
            f"fail {c['failed']}  err {c['errors']}  drop {c['dropped']}  p50/p95 {lat}  "
            f"pre/inv/post {split}  q {len(svc.feed)}")


class StatusLine:
    """A line redrawn in place on a terminal (every 0.5 s), or printed every ``every`` seconds otherwise."""

    def __init__(self, stream, every=10.0, quiet=False):
        self.stream = stream
        self.quiet = quiet
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = 0.5 if self.tty else every
        self._last = 0.0

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not stop inspection

    def tick(self, make_line, force=False):
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        line = make_line()
        self._write("\r\x1b[K" + line[:200] if self.tty else line + "\n")

    def clear(self):
        if self.tty and not self.quiet:
            self._write("\r\x1b[K")


def summary(svc):
    c = dict(svc.counts)
    el = _elapsed(svc)
    rnd = lambda v: None if v is None else round(v, 3)  # noqa: E731
    sinks = svc.sinks.summaries()
    rejects = sinks.get("reject") or {}
    return {
        **c, "inspected": c["ok"], "elapsed_s": round(el, 3),
        "rate_per_s": round((c["ok"] + c["errors"]) / el, 3) if el > 0 else None,
        "latency_ms": {"p50": rnd(svc.latency.pct(50)), "p95": rnd(svc.latency.pct(95))},
        "e2e_ms": {"p50": rnd(svc.e2e.pct(50)), "p95": rnd(svc.e2e.pct(95))},
        "stages_ms": {k: {"p50": rnd(svc.stages[k].pct(50)), "p95": rnd(svc.stages[k].pct(95))} for k in STAGES},
        "e2e_durable_ms": {"p50": rnd(svc.e2e_durable.pct(50)), "p95": rnd(svc.e2e_durable.pct(95))},
        "model_sha": svc.model_sha, "log": str(svc.log.path) if svc.log.path else None,
        "log_lines": svc.log.lines, "log_rotations": svc.log.rotations,
        "rejects": rejects.get("saved", 0), "reject_errors": svc.sink_errors.get("reject", 0),
        "reject_overlays_missing": rejects.get("overlays_missing", 0),
        "sink_errors": dict(svc.sink_errors),
        "hook": sinks.get("hook"), "mqtt": sinks.get("mqtt"), "log_error": svc.log_error,
        **{name: sinks.get(name) for name in ("opcua", "modbus", "webhook", "ui")},
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
    if s.get("sink_errors"):
        lines.append("  output errors: " + ", ".join(f"{k} {v}" for k, v in sorted(s["sink_errors"].items())))
    if s.get("hook"):
        h = s["hook"]
        lines.append(f"  hook: {h['run']} run, {h['timeouts']} timed out, {h['failed']} failed, {h['skipped']} skipped")
    if s.get("mqtt"):
        m = s["mqtt"]
        lines.append(f"  mqtt: {m['published']} delivered, {m['unsent']} not delivered (queued), {m['failed']} failed")
    lines += _plant_lines(s)
    if s.get("log"):
        lines.append(f"  log: {s['log']} ({s['log_lines']} lines this run)")
    if s.get("log_error"):
        lines.append(f"  stopped: {s['log_error']}")
    return "\n".join(lines)


def _plant_lines(s):
    out = []
    if s.get("opcua"):
        o = s["opcua"]
        out.append(f"  opcua: {o['url']}, {o['applied']} updates published, {o['dropped']} superseded, {o['failed']} failed")
    if s.get("modbus"):
        m = s["modbus"]
        out.append(f"  modbus: {m['updates']} updates, {m['reads']} reads served")
    if s.get("webhook"):
        w = s["webhook"]
        out.append(f"  webhook: {w['sent']} sent, {w['failed']} failed, {w['dropped']} dropped (queue full), "
                   f"{w['unsent']} unsent, {w['retries']} retries")
    if s.get("ui"):
        u = s["ui"]
        out.append(f"  live page: {u['url']}, {u['requests']} requests")
    return out
