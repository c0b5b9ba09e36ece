"""Helpers for the kiosk tests: configs, a recording MQTT subscriber.

Plain functions and classes that tests import; the fixtures (``mock_pins``...)
are in tests/conftest.py.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.config import KioskConfig, parse_config
from tests.support.waiting import wait_until

STATION = "kalvia"
DEVICE = "kalvia-1"


def kiosk_raw(tmp_path: Path, url: str, **sections: dict) -> dict:
    raw: dict = {
        "device": {"station_id": STATION, "device_id": DEVICE},
        "broker": {"url": url, "heartbeat_s": 0.3, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5},
        "outbox": {"path": str(tmp_path / "kiosk" / "outbox.db")},
        "state": {"dir": str(tmp_path / "kiosk" / "state")},
        "hardware": {"confirm_s": 5.0},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def kiosk_config(tmp_path: Path, url: str, **sections: dict) -> KioskConfig:
    return parse_config(kiosk_raw(tmp_path, url, **sections), source="test.toml")


def write_toml(path: Path, raw: dict) -> Path:
    """A tiny TOML writer for the flat two-level configs the tests use."""

    def fmt(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        return json.dumps(str(value))

    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {fmt(value)}" for key, value in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


class Subscriber:
    """A test-side MQTT client that records everything on the kiosk's topics.

    Persistent session (fixed id, clean_start off), so messages published while it
    is reconnecting after a broker restart are queued for it, like the server's.
    """

    def __init__(self, port: int, pattern: str = "palaute/v1/#") -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.port = port
        self.pattern = pattern
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.events: dict[str, list[dict]] = defaultdict(list)
        self.batches = 0
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.reconnect_delay_set(0.05, 0.5)

    def start(self) -> Subscriber:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        wait_until(self.subscribed.is_set, 10, "test subscriber's SUBACK")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(self.pattern, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            if message.topic.endswith("/events"):
                self.batches += 1
                for event in json.loads(message.payload)["events"]:
                    self.events[event["event_id"]].append(event)

    def on(self, channel: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t.endswith("/" + channel)]

    def last_status(self) -> dict | None:
        statuses = self.on("status")
        return json.loads(statuses[-1][0]) if statuses and statuses[-1][0] else None

    def event_ids(self) -> set[str]:
        with self.lock:
            return set(self.events)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def publish(port: int, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
    """Publish one QoS 1 message and wait for its PUBACK (the server's side, in tests)."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic_name, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
