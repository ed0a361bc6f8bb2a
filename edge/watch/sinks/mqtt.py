"""MQTT events: one JSON message per result (QoS 1) on ``--topic``.

paho's network thread connects in the background and reconnects with
back-off, so a broker that is down at start or goes away later never blocks
or stops inspection: messages queue in memory (bounded) and are sent after
reconnecting; past the bound they are counted as dropped. ``<topic>/status``
carries a retained ``online``/``offline`` (last will) for dashboards.
"""
from __future__ import annotations

import json
import threading

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

    def __init__(self, address, topic, client_id=None, qos=1, max_queued=1000, keepalive=30):
        mqtt = require_optional("paho.mqtt.client", "watch", "--mqtt", "paho-mqtt", MqttError)
        self.host, self.port = parse_hostport(address)
        self.topic = topic.rstrip("/")
        self.qos = qos
        self.published = 0
        self.failed = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=True)
        self.client.max_queued_messages_set(max_queued)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.will_set(f"{self.topic}/status", "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        try:
            self.client.connect_async(self.host, self.port, keepalive=keepalive)
        except (OSError, ValueError) as exc:
            raise MqttError(f"--mqtt {address}: {exc}") from None
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            self.connected.set()
            client.publish(f"{self.topic}/status", "online", qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self.connected.is_set():
            self.disconnects += 1
        self.connected.clear()

    def handle(self, record, prediction, item):
        if record.get("status") in ("ok", "error"):  # dropped frames are in the log, not on the bus
            self.publish(record)

    def summary(self):
        return {"published": self.published, "failed": self.failed}

    def publish(self, result: dict) -> bool:
        try:
            info = self.client.publish(self.topic, json.dumps(result, default=str), qos=self.qos)
        except Exception:  # never let the event bus stop inspection
            self.failed += 1
            return False
        # NO_CONN with QoS>0 still queues the message for after reconnect.
        if info.rc in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
            self.published += 1
            return True
        self.failed += 1
        return False

    def close(self, timeout=2.0):
        try:
            if self.connected.is_set():
                self.client.publish(f"{self.topic}/status", "offline", qos=1, retain=True).wait_for_publish(timeout)
        except Exception:
            pass
        self.client.disconnect()
        self.client.loop_stop()


def from_config(cfg, ctx):
    return MqttSink(cfg.mqtt, cfg.topic) if cfg.mqtt else None
