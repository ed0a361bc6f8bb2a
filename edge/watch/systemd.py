"""``--install-service``: a systemd unit that runs the same ``watch`` command at boot.

Paths are made absolute (systemd has no useful working directory), the
interpreter is this one (so a virtualenv keeps working), and ``%``/``$`` are
escaped because systemd expands them in ExecStart.
"""
from __future__ import annotations

import getpass
import os
import shlex
import sys
from pathlib import Path

# CLI options whose values are paths on this machine.
PATH_OPTIONS = {"model", "log", "rejects", "labels", "opcua_security", "opcua_key", "opcua_trust"}
# Never written into the unit (units are world-readable): read from ENV_FILE instead.
SECRET_OPTIONS = {"ui_token": "EDGEINSPECT_UI_TOKEN"}
ENV_FILE = "/etc/edgeinspect/watch.env"
PORT_OPTIONS = ("metrics_port", "opcua_port", "modbus_port", "ui_port")


def _systemd_quote(arg: str) -> str:
    return shlex.quote(arg).replace("%", "%%").replace("$", "$$")


def absolute_args(params: dict, defaults: dict, order) -> list[str]:
    """Rebuild ``watch`` arguments from parsed CLI params, leaving defaults out."""
    args = []
    for name in order:
        value = params.get(name)
        if name in ("install_service", "service_file", "user") or name in SECRET_OPTIONS or value is None \
                or value == defaults.get(name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if value:
                args.append(flag)
            continue
        value = str(value)
        if name in PATH_OPTIONS or (name == "source" and os.path.exists(value)):
            value = str(Path(value).resolve())
        args += [flag, value]
    return args


def secret_env(params: dict) -> dict:
    """{ENV_VAR: value} of the secret options that are set (for ENV_FILE)."""
    return {env: str(params[name]) for name, env in SECRET_OPTIONS.items() if params.get(name)}


def needs_low_ports(params: dict) -> bool:
    return any(params.get(p) is not None and 0 < int(params[p]) < 1024 for p in PORT_OPTIONS)


def unit_text(watch_args, user=None, workdir=None, description=None, python=None, env_file=None, low_ports=False):
    user = user or getpass.getuser()
    workdir = str(Path(workdir or os.getcwd()).resolve())
    python = python or sys.executable
    cmd = " ".join(_systemd_quote(a) for a in [python, "-m", "edge.cli", "watch", *watch_args])
    bindir = os.path.dirname(python)
    extra = ""
    if env_file:
        extra += f"# The --ui-token (a secret) is read from here, not written into this world-readable unit.\nEnvironmentFile={env_file}\n"
    if low_ports:
        extra += "# Modbus 502 / OPC UA or page ports below 1024 without running as root.\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"
    return f"""# Written by 'edgeinspect watch --install-service'.
# Install: sudo cp THIS.service /etc/systemd/system/edgeinspect-watch.service
#          sudo systemctl daemon-reload && sudo systemctl enable --now edgeinspect-watch
# Logs:    journalctl -u edgeinspect-watch -f
[Unit]
Description={description or 'edgeinspect inspection service'}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User={user}
WorkingDirectory={workdir}
Environment=PYTHONUNBUFFERED=1
Environment=PATH={bindir}:/usr/local/bin:/usr/bin:/bin
{extra}ExecStart={cmd}
Restart=on-failure
RestartSec=5
# SIGTERM lets the item in flight finish, flushes the log and prints a summary.
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""
