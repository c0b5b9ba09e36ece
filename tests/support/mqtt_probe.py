"""A small paho-mqtt client for tests: connect (TLS, credentials), publish, collect.

Every wait has a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Probe:
    def __init__(
        self,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        client_id: str | None = None,
        host: str = "127.0.0.1",
        protocol: int = mqtt.MQTTv311,
    ) -> None:
        self.port, self.host = port, host
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connect_rc: object = None
        self.subacks: queue.Queue[list] = queue.Queue()
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put(list(rcs))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connect_rc = reason_code
        if not reason_code.is_failure:
            self.connected.set()
        else:
            self.disconnected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnected.set()

    def connect(self, timeout: float = 10.0) -> bool:
        """True when the broker accepted the CONNECT; False when it refused or hung up."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.disconnected.is_set():
                return False
            time.sleep(0.01)
        raise TimeoutError("no CONNACK within the deadline")

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 10.0) -> list:
        self.client.subscribe(topic, qos)
        return self.subacks.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=10)

    def expect(self, topic: str, timeout: float = 10.0) -> mqtt.MQTTMessage:
        """The next message on ``topic``; anything else received before it is kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message on {topic} within {timeout}s")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(msg)
            if msg.topic == topic:
                return msg

    @property
    def seen(self) -> list:
        if not hasattr(self, "_seen"):
            self._seen: list = []
        return self._seen

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
