"""``--modbus-port``: a Modbus TCP server (pymodbus) with the last result and the counters in registers.

``REGISTERS`` and ``BITS`` are the register map (``edgeinspect watch
--modbus-map`` prints them; the README's table is this table). Input
registers (FC 4) and holding registers (FC 3) hold the same words, so a PLC
that can only read holding registers works too; coils (FC 1) and discrete
inputs (FC 2) the same bits. Everything is read-only (a write gets the
ILLEGAL ADDRESS exception). 32-bit values are two registers, high word first.

The server runs on its own thread and event loop. The inspection loop builds
the new register words and swaps one reference; the server copies the
current words into its reply on each request (in its own loop), so a read
never sees half of an update (a 32-bit pair is always consistent with the
rest) and updating never waits for the server.
"""
from __future__ import annotations

import logging

from edge.errors import EdgeInspectError
from edge.optional import require_optional
from edge.watch.sinks import BaseSink
from edge.watch.sinks.line_state import STATES, LineState
from edge.watch.sinks.loop_thread import LoopThread

# (first register, registers, name, meaning). uint32 = 2 registers, high word first.
REGISTERS = (
    (0, 2, "sequence", "uint32: results so far (ok + error); changes when a new result is published"),
    (2, 1, "verdict", "last verdict: 0 none yet, 1 good, 2 defective, 3 error"),
    (3, 1, "score_x1000", "last score x 1000 (0..1000; defective when >= threshold_x1000)"),
    (4, 1, "type_index", "last defect type: its index in the model's labels (0 = good/none, 65535 unknown)"),
    (5, 2, "inspected", "uint32: parts judged by the model"),
    (7, 2, "defective", "uint32: parts called defective"),
    (9, 2, "passed", "uint32: parts called good"),
    (11, 2, "errors", "uint32: items that could not be inspected"),
    (13, 2, "dropped", "uint32: frames dropped because inference was slower than the camera"),
    (15, 1, "latency_p50_x10", "median inference time of the last 1000 parts, 0.1 ms units"),
    (16, 1, "state", "service state: 0 starting, 1 running, 2 stopped"),
    (17, 1, "threshold_x1000", "the model's decision threshold x 1000"),
)
N_REGISTERS = 18
# (bit address, name, meaning): coils and discrete inputs.
BITS = (
    (0, "last_defective", "last part defective"),
    (1, "last_error", "last item could not be inspected"),
    (2, "running", "the service is running"),
)


class ModbusError(EdgeInspectError):
    pass


def _u16(x):
    return max(0, min(65535, int(round(x))))


def registers(snap) -> list:
    """The register words for one LineState snapshot."""
    words = [0] * N_REGISTERS

    def u32(addr, v):
        v = int(v) % 2 ** 32
        words[addr], words[addr + 1] = v >> 16, v & 0xFFFF

    u32(0, snap["sequence"])
    words[2] = snap["verdict_code"]
    words[3] = _u16(1000 * (snap["score"] or 0.0))
    words[4] = _u16(snap["type_index"])
    for addr, key in ((5, "inspected"), (7, "defective_count"), (9, "passed"), (11, "errors"), (13, "dropped")):
        u32(addr, snap[key])
    words[15] = _u16(10 * snap["latency_p50_ms"])
    words[16] = STATES.index(snap["state"])
    words[17] = _u16(1000 * snap["threshold"])
    return words


def bits(snap) -> int:
    """Coils / discrete inputs as one word (bit 0 = address 0)."""
    return ((snap["verdict"] == "defective") << 0) | ((snap["verdict"] == "error") << 1) | \
        ((snap["state"] == "running") << 2)


def format_map() -> str:
    """The register map as a Markdown table (``--modbus-map`` and the README)."""
    lines = ["| register (FC 4 input = FC 3 holding) | words | name | meaning |", "| --- | --- | --- | --- |"]
    for addr, n, name, meaning in REGISTERS:
        lines.append(f"| {addr if n == 1 else f'{addr}-{addr + n - 1}'} | {n} | `{name}` | {meaning} |")
    lines += ["", "| bit (FC 1 coil = FC 2 discrete input) | name | meaning |", "| --- | --- | --- |"]
    for addr, name, meaning in BITS:
        lines.append(f"| {addr} | `{name}` | {meaning} |")
    return "\n".join(lines)


class ModbusServer(BaseSink):
    name = "modbus"

    def __init__(self, port, host="127.0.0.1", current_model=None, model_path=""):
        self.pymodbus = require_optional("pymodbus", "plant", "--modbus-port", "pymodbus", ModbusError)
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it warns about its own deprecations
        self.host, self.port = host, int(port)
        self.current_model = current_model or (lambda: None)
        self.line = LineState(self.current_model(), model_path)
        self.updates = self.reads = 0
        self._server = None
        self._publish()
        try:
            self.thread = LoopThread("modbus", self._start, stop=self._stop_server)
        except (OSError, RuntimeError) as exc:
            raise ModbusError(f"--modbus-port {port}: cannot listen on {host}:{port} ({exc}); "
                              "pick a free port or another --listen address") from None

    def _publish(self):
        snap = self.line.snapshot()
        self._words = (registers(snap), bits(snap))  # one reference swap: the server reads either whole
        self.updates += 1

    async def _action(self, function_code, start_address, address, count, current, set_values):
        if set_values is not None:
            from pymodbus.constants import ExcCodes

            return ExcCodes.ILLEGAL_ADDRESS  # read-only: the PLC cannot fake a verdict
        words, flags = self._words
        self.reads += 1
        if function_code in (3, 4):
            current[:] = words
        else:
            current[0] = flags
        return None

    async def _start(self):
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        regs = [SimData(0, count=N_REGISTERS, values=0, datatype=DataType.REGISTERS, readonly=True)]
        flags = [SimData(0, count=16, values=False, datatype=DataType.BITS, readonly=True)]
        device = SimDevice(0, simdata=(list(flags), list(flags), list(regs), list(regs)), action=self._action)
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    async def _stop_server(self):
        if self._server is not None:
            await self._server.shutdown()

    def handle(self, record, prediction, item):
        self.line.add(record)
        self._publish()

    def event(self, record):
        if self.line.apply_event(record, self.current_model):
            self._publish()

    def summary(self):
        return {"handled": self.line.handled, "updates": self.updates, "reads": self.reads}

    def close(self):
        if self.thread.alive:
            self.line.state = "stopped"
            self._publish()
            self.thread.close()


def from_config(cfg, ctx):
    if cfg.modbus_port is None:
        return None
    return ModbusServer(cfg.modbus_port, cfg.listen, ctx.model, ctx.model_path)
