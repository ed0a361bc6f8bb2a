"""``WatchConfig``: every ``watch`` setting with its default, stated once (the CLI reads them from here).

Values are range-checked when the config is built, so a service started from
Python and one started from the command line refuse the same bad settings
with the same one-line message naming the option.
"""
from __future__ import annotations

import ipaddress
import math
from dataclasses import MISSING, dataclass, fields

from edge.errors import EdgeInspectError


class ConfigError(EdgeInspectError):
    """A watch option outside its allowed range."""


@dataclass
class WatchConfig:
    model: str
    source: str
    existing: str = "process"
    recursive: bool = False
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
    # Plant outputs (issue 15): OPC UA, Modbus TCP, webhook, live page; servers bind `listen`.
    listen: str = "127.0.0.1"
    opcua_port: int | None = None
    opcua_security: str | None = None  # server certificate: Basic256Sha256 Sign & Encrypt only
    opcua_key: str | None = None
    opcua_trust: str | None = None     # folder of client certificates allowed to connect
    modbus_port: int | None = None
    webhook: str | None = None
    webhook_on: str = "all"
    webhook_timeout: float = 2.0
    webhook_retries: int = 3
    webhook_backoff: float = 0.5
    ui_port: int | None = None
    ui_token: str | None = None
    backend: str | None = None
    threads: int | None = None
    # FFmpeg's decoder threads for video files and streams. 1: a frame is decoded in the reader's own
    # read, not by frame threads that run on beside inference; 1080p mp4v at 20 fps on 2 cores:
    # e2e p50 5.7-6.1 -> 3.7-4.0 ms, invoke p50 3.9-4.1 -> 2.2-2.3 ms (benchmarks/watch_1080p.py). 0: FFmpeg's choice.
    decode_threads: int = 1
    device: str | None = None
    labels: str | None = None
    max_items: int | None = None
    fps: float | None = None         # pace a video file (simulate a camera); None: as fast as inference
    reload_interval: float = 1.0
    retry_initial: float = 0.5
    retry_max: float = 30.0
    status_every: float = 10.0
    quiet: bool = False

    def __post_init__(self):
        for name, (lo, hi, lo_open) in RANGES.items():
            value = getattr(self, name)
            if value is None:
                continue
            flag = "--" + name.replace("_", "-")
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{flag} {value!r}: not a number") from None
            bad = math.isnan(x) or math.isinf(x) or (x <= lo if lo_open else x < lo) or (hi is not None and x > hi)
            if bad:
                rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
                raise ConfigError(f"{flag} {value}: must be a finite number {rng}")
        if self.existing not in ("process", "skip"):
            raise ConfigError(f"--existing {self.existing}: use 'process' or 'skip'")
        if self.drop not in (None, "oldest", "none"):
            raise ConfigError(f"--drop {self.drop}: use 'oldest' or 'none'")
        if self.ui_port is not None and not self.ui_token and not is_loopback(self.listen):
            raise ConfigError(f"--ui-port with --listen {self.listen} shows the line's parts to the whole network: "
                              "set --ui-token SECRET (or EDGEINSPECT_UI_TOKEN) so only holders of the token see it")
        if self.webhook_on not in ("all", "defective"):
            raise ConfigError(f"--webhook-on {self.webhook_on}: use 'all' or 'defective'")
        ports = [(f, getattr(self, f)) for f in ("metrics_port", "opcua_port", "modbus_port", "ui_port")]
        used = [(f, p) for f, p in ports if p]  # 0 is "any free port": never a clash
        for i, (f, p) in enumerate(used):
            for g, q in used[:i]:
                if p == q:
                    raise ConfigError(f"--{f.replace('_', '-')} {p}: the same port as --{g.replace('_', '-')}")
        if self.retry_max < self.retry_initial:
            raise ConfigError(f"--retry-max {self.retry_max} is below --retry-initial {self.retry_initial}")


# name -> (lower bound, upper bound or None, lower bound excluded). A zero poll or timeout spins a core.
RANGES = {
    "poll": (0.0, 3600, True), "settle_timeout": (0.0, None, True), "queue": (1, 100000, False),
    "log_max_mb": (0.0, None, False), "log_keep": (1, 10000, False), "hook_timeout": (0.0, 3600, True),
    "metrics_port": (0, 65535, False), "drift_window": (1, 10**7, False), "threads": (1, 256, False),
    "decode_threads": (0, 64, False),
    "max_items": (1, None, False), "fps": (0.0, 10000, True), "reload_interval": (0.0, 3600, True),
    "retry_initial": (0.0, 3600, True), "retry_max": (0.0, 86400, True), "status_every": (0.0, None, True),
    "opcua_port": (0, 65535, False), "modbus_port": (0, 65535, False), "ui_port": (0, 65535, False),
    "webhook_timeout": (0.0, 600, True), "webhook_retries": (0, 100, False), "webhook_backoff": (0.0, 3600, True),
}


def is_loopback(host) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return False


def default(name):
    """The default of one field (the click options use this, so each default is written once)."""
    f = next(f for f in fields(WatchConfig) if f.name == name)
    if f.default is MISSING:
        raise KeyError(f"{name} has no default")
    return f.default
