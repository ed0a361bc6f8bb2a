"""MQTT events: one JSON message per result (QoS 1) on ``--topic``.

paho's network thread connects in the background and reconnects with
back-off, so a broker that is down at start or goes away later never blocks
or stops inspection: messages queue in memory (bounded) and are sent after
reconnecting; past the bound they are counted as failed. A message counts as
published only when the broker acknowledged it (QoS 1 PUBACK); what is still
queued at the stop is reported as unsent, and an unreachable broker is an
event in the log. ``<topic>/status`` carries a retained ``online``/``offline``
(last will) for dashboards.
"""
from __future__ import annotations

import json
import threading
import time

from edge.errors import EdgeInspectError
from edge.optional import require_optional
from edge.watch.sinks import BaseSink


class MqttError(EdgeInspectError):
    pass


def parse_hostport(value, default_port=1883):
    host, sep, port = str(value).rpartition(":")
    if not sep:
        return str(value), default_port
    if not port.isdigit() or not host:
        raise MqttError(f"--mqtt {value}: expected host:port, e.g. localhost:1883")
    return host.strip("[]"), int(port)


class MqttSink(BaseSink):
    name = "mqtt"

    def __init__(self, address, topic, client_id=None, qos=1, max_queued=1000, keepalive=30, on_event=None):
        mqtt = require_optional("paho.mqtt.client", "watch", "--mqtt", "paho-mqtt", MqttError)
        self.host, self.port = parse_hostport(address)
        self.topic = topic.rstrip("/")
        self.qos = qos
        self.published = 0  # acknowledged by the broker
        self.failed = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self.on_event = on_event or (lambda name, **fields: None)
        self._lock = threading.Lock()
        self._unacked, self._early = set(), set()  # message ids sent / acknowledged before we saw the id
        self._down_reported = False
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=True)
        self.client.max_queued_messages_set(max_queued)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.will_set(f"{self.topic}/status", "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_publish = self._on_publish
        self.address = address
        try:
            self.client.connect_async(self.host, self.port, keepalive=keepalive)
        except (OSError, ValueError) as exc:
            raise MqttError(f"--mqtt {address}: {exc}") from None
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._report_down(f"broker refused the connection ({reason_code})")
            return
        self.connected.set()
        client.publish(f"{self.topic}/status", "online", qos=1, retain=True)
        if self._down_reported:
            self._down_reported = False
            self.on_event("mqtt_connected", broker=self.address, unsent=self.unsent)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self.connected.is_set():
            self.disconnects += 1
            self._report_down(f"connection lost ({reason_code})")
        self.connected.clear()

    def _on_connect_fail(self, client, userdata):
        self._report_down("cannot connect")

    def _report_down(self, why):
        if not self._down_reported:  # once per outage: paho retries every few seconds
            self._down_reported = True
            self.on_event("mqtt_unreachable", broker=self.address,
                          error=f"--mqtt {self.address}: {why}; results are queued and sent after reconnecting")

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
                self.published += 1
            elif len(self._early) < 10000:  # the ack beat publish() back (or a status message)
                self._early.add(mid)

    @property
    def unsent(self):
        with self._lock:
            return len(self._unacked)

    def handle(self, record, prediction, item):
        if record.get("status") in ("ok", "error"):  # dropped frames are in the log, not on the bus
            self.publish(record)

    def summary(self):
        return {"published": self.published, "failed": self.failed, "unsent": self.unsent}

    def publish(self, result: dict) -> bool:
        """Queue one message; True when paho accepted it (it counts as published once acknowledged)."""
        try:
            info = self.client.publish(self.topic, json.dumps(result, default=str), qos=self.qos)
        except Exception:  # never let the event bus stop inspection
            self.failed += 1
            return False
        # NO_CONN with QoS>0 still queues the message for after reconnect.
        if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
            self.failed += 1
            return False
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.published += 1
            else:
                self._unacked.add(info.mid)
        return True

    def close(self, timeout=2.0):
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and self.unsent and time.monotonic() < deadline:
            time.sleep(0.02)  # let in-flight messages be acknowledged before counting them unsent
        try:
            if self.connected.is_set():
                self.client.publish(f"{self.topic}/status", "offline", qos=1, retain=True).wait_for_publish(timeout)
        except Exception:
            pass
        self.client.disconnect()
        self.client.loop_stop()


def from_config(cfg, ctx):
    return MqttSink(cfg.mqtt, cfg.topic, on_event=ctx.event) if cfg.mqtt else None
