"""``edgeinspect watch``: inspect parts as they arrive (folder, video/stream, camera)."""
from __future__ import annotations

import click

from edge.errors import EdgeInspectError
from edge.watch.config import default as D

EPILOG = """\b
Examples:
  edgeinspect watch --model model_int8.tflite --source /srv/camera --log results.jsonl
  edgeinspect watch --model m.tflite --source rtsp://cam1/stream --drop oldest --mqtt localhost:1883
  edgeinspect watch --model m.tflite --source 0 --rejects rejects/ --on-defect 'curl -s -d @- http://plc/reject'
  edgeinspect watch --model m.tflite --source /srv/camera --log r.jsonl --install-service --service-file w.service
  edgeinspect watch --model m.tflite --source 0 --opcua-port 4840 --modbus-port 5020 --ui-port 8080
  edgeinspect watch --modbus-map

\b
Every item gets one JSONL line (status ok|error|dropped); SIGTERM/Ctrl-C stops after the item in
flight and prints a summary. Exit codes: 0 clean stop, 2 bad model/source/options,
3 the result log could not be written (disk full): the generated unit restarts it.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--model", "-m", required=True, type=click.Path(dir_okay=False), help="The .tflite model (reloaded when the file is replaced).")
@click.option("--source", "-s", required=True, help="Folder, video file, stream URL, camera index (0) or 'picamera'.")
@click.option("--existing", type=click.Choice(["process", "skip"]), default=D("existing"), show_default=True,
              help="Folder: inspect or skip files already there at start (files in --log are never re-inspected).")
@click.option("--recursive", "-r", is_flag=True, default=D("recursive"), help="Folder: watch its subfolders too.")
@click.option("--poll", type=float, default=D("poll"), show_default=True, help="Folder polling interval, seconds.")
@click.option("--settle-timeout", type=float, default=D("settle_timeout"), show_default=True,
              help="Folder: seconds a file may stay incomplete/undecodable before it is logged as an error.")
@click.option("--drop", type=click.Choice(["oldest", "none"]), default=D("drop"),
              help="When inference is slower than the source: drop the oldest queued frame, or wait. "
                   "[default: oldest for cameras/streams, none for folders/video files]")
@click.option("--queue", type=click.IntRange(1), default=D("queue"), show_default=True, help="Frames that may wait for inference.")
@click.option("--fps", type=float, default=D("fps"), help="Video file: read at this rate (simulate a camera) instead of as fast as possible.")
@click.option("--log", "log", type=click.Path(dir_okay=False), default=D("log"), help="Append-only JSONL result log (one line per item).")
@click.option("--log-max-mb", type=float, default=D("log_max_mb"), show_default=True, help="Rotate the log at this size (0: never).")
@click.option("--log-keep", type=click.IntRange(1), default=D("log_keep"), show_default=True, help="Rotated log files to keep.")
@click.option("--rejects", type=click.Path(file_okay=False), default=D("rejects"), help="Save defective images (+ anomaly heat maps) here.")
@click.option("--on-defect", default=D("on_defect"), help="Shell command per defective part; result as EDGEINSPECT_* env vars and JSON on stdin.")
@click.option("--hook-timeout", type=float, default=D("hook_timeout"), show_default=True, help="Kill --on-defect after this many seconds.")
@click.option("--mqtt", default=D("mqtt"), help="MQTT broker host:port for one JSON event per result (QoS 1).")
@click.option("--topic", default=D("topic"), show_default=True, help="MQTT topic.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=D("metrics_port"), help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-host", default=D("metrics_host"), show_default=True, help="Address for /metrics (0.0.0.0 exposes it).")
@click.option("--drift-window", type=click.IntRange(1), default=D("drift_window"), show_default=True, help="N for the score-drift gauge.")
@click.option("--listen", default=D("listen"), show_default=True,
              help="Address the OPC UA, Modbus and live-page servers bind (0.0.0.0: every interface).")
@click.option("--opcua-port", type=click.IntRange(0, 65535), default=D("opcua_port"),
              help="Serve OPC UA here (e.g. 4840): an 'edgeinspect' object with the last result and counters.")
@click.option("--opcua-security", type=click.Path(dir_okay=False), default=D("opcua_security"),
              help="OPC UA server certificate (PEM/DER): only Basic256Sha256 Sign & Encrypt, no anonymous plain text.")
@click.option("--opcua-key", type=click.Path(dir_okay=False), default=D("opcua_key"), help="Its private key (PEM).")
@click.option("--opcua-trust", type=click.Path(file_okay=False), default=D("opcua_trust"),
              help="With --opcua-security: accept only client certificates in this folder.")
@click.option("--modbus-port", type=click.IntRange(0, 65535), default=D("modbus_port"),
              help="Serve Modbus TCP here (e.g. 5020; 502 needs root). See --modbus-map.")
@click.option("--modbus-map", is_flag=True, is_eager=True, expose_value=False, callback=lambda c, p, v: _modbus_map(c, v),
              help="Print the Modbus register map and exit.")
@click.option("--webhook", default=D("webhook"), help="POST each result as JSON to this http(s) URL (queued, retried, never blocks).")
@click.option("--webhook-on", type=click.Choice(["all", "defective"]), default=D("webhook_on"), show_default=True,
              help="Post every result, or defective parts only.")
@click.option("--webhook-timeout", type=float, default=D("webhook_timeout"), show_default=True, help="Seconds per POST attempt.")
@click.option("--webhook-retries", type=click.IntRange(0, 100), default=D("webhook_retries"), show_default=True,
              help="Retries of a failed POST (back-off 0.5 s, 1 s, 2 s ...); then it is counted as lost.")
@click.option("--ui-port", type=click.IntRange(0, 65535), default=D("ui_port"),
              help="Serve the live operator page here (e.g. 8080): counters, last parts, rejects with heat maps.")
@click.option("--ui-token", default=D("ui_token"), envvar="EDGEINSPECT_UI_TOKEN",
              help="Require this token for the page (?token=...); needed with a non-loopback --listen. "
                   "[env: EDGEINSPECT_UI_TOKEN]")
@click.option("--backend", default=D("backend"), help="Interpreter: litert, tflite-runtime, tensorflow, openvino, or fastest (a short self-benchmark at "
              "load, logged); default: first that works.")
@click.option("--threads", type=click.IntRange(1, 256), default=D("threads"), help="Interpreter threads.")
@click.option("--decode-threads", type=click.IntRange(0, 64), default=D("decode_threads"), show_default=True,
              help="FFmpeg decoder threads for a video file or stream (0: FFmpeg's choice). Raise it when the "
                   "reader cannot keep up with a large H.264 stream; 1 keeps decoding off the cores inference runs on.")
@click.option("--device", default=D("device"), help="Edge TPU device (e.g. usb, pci:0).")
@click.option("--labels", type=click.Path(dir_okay=False), default=D("labels"), help="Labels file for a plain classifier without metadata.")
@click.option("--max-items", type=click.IntRange(1), default=D("max_items"), help="Stop after this many items (testing).")
@click.option("--status-every", type=float, default=D("status_every"), show_default=True, help="Status line period when stderr is not a terminal.")
@click.option("--quiet", "-q", is_flag=True, default=D("quiet"), help="No live status line.")
@click.option("--install-service", is_flag=True, help="Print a systemd unit for this command instead of running it.")
@click.option("--service-file", type=click.Path(dir_okay=False), default=None, help="With --install-service: write the unit here.")
@click.option("--user", default=None, help="With --install-service: run as this user (default: you).")
@click.pass_context
def watch(ctx, **kw):
    """Inspect parts as they arrive and report every verdict (log, rejects, hook, MQTT, metrics, OPC UA, Modbus,
    webhook, live page)."""
    if kw["install_service"]:
        _install_service(ctx, kw)
        return
    from edge.watch.service import Service, WatchConfig, format_summary

    names = {f for f in WatchConfig.__dataclass_fields__}
    cfg = WatchConfig(**{k: v for k, v in kw.items() if k in names})
    try:
        svc = Service(cfg)
    except OSError as exc:
        raise EdgeInspectError(f"watch: {exc}") from None
    if not cfg.quiet:
        click.echo(f"watching {svc.source.id} ({svc.source_kind}, drop={svc.drop}, queue={svc.qmax}) with "
                   f"{svc.model_path} [{svc.model_sha}]" + (f"; log {cfg.log}" if cfg.log else "; no --log"), err=True)
    summary = svc.run()
    click.echo(format_summary(summary))
    if summary.get("log_error"):
        from edge.cli import EXIT_RESTART

        click.echo(f"error: {summary['log_error']}; stopped (exit {EXIT_RESTART}) so systemd restarts the service "
                   "once the log can be written again", err=True)
        ctx.exit(EXIT_RESTART)


def _modbus_map(ctx, value):
    if not value or ctx.resilient_parsing:
        return
    from edge.watch.sinks.modbus import format_map

    click.echo(format_map())
    ctx.exit(0)


def _install_service(ctx, kw):
    from edge.atomic import atomic_write_text
    from edge.watch.systemd import ENV_FILE, absolute_args, needs_low_ports, secret_env, unit_text

    defaults = {p.name: p.default for p in ctx.command.params}
    order = [p.name for p in ctx.command.params]
    args = absolute_args(kw, defaults, order)
    secrets = secret_env(kw)
    text = unit_text(args, user=kw["user"], description=f"edgeinspect watch {kw['source']}",
                     env_file=ENV_FILE if secrets else None, low_ports=needs_low_ports(kw))
    if secrets:
        lines = "\\n".join(f"{k}={v}" for k, v in secrets.items())
        click.echo(f"the unit reads {', '.join(secrets)} from {ENV_FILE}; create it (readable by root only) with: "
                   f"printf '{lines}\\n' | sudo install -D -m 600 /dev/stdin {ENV_FILE}", err=True)
    if kw["service_file"]:
        atomic_write_text(kw["service_file"], text)
        click.echo(f"wrote {kw['service_file']}; install it with: sudo cp {kw['service_file']} "
                   "/etc/systemd/system/edgeinspect-watch.service && sudo systemctl daemon-reload && "
                   "sudo systemctl enable --now edgeinspect-watch")
    else:
        click.echo(text, nl=False)
