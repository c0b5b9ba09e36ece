"""The fleet server's outgoing MQTT link: retained station configs and commands.

A connection of its own (client id ``<ingest client id>-out-<host>-<pid>``, one per process), separate from the
ingest's persistent session, so a slow database never delays a config push and a
publish never waits behind the ingest's acknowledgements. Same account as the
ingest: the broker ACL lets it write every device's ``config`` and ``cmd``.

``publish`` returns only after the broker's PUBACK (QoS 1), so "published" on the
dashboard means the broker has it; the kiosk's acknowledgement comes later in its
status (config_version, last_command).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from fleet_server.core.errors import PublishError
from fleet_server.core.settings import Settings
from fleet_server.fleet.survey_links import SurveyLinks, survey_links_from

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
PUBACK_TIMEOUT_S = 10.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 2.0
"""Short and capped: one connection to a broker on the same host, and a person waiting
on the dashboard for the first publish after a broker restart (longer backoff would
outlast CONNECT_TIMEOUT_S)."""


def _publisher_client_id(settings: Settings) -> str:
    """One per process (a clean session): several server processes publish side by side."""
    import os
    import socket

    return f"{settings.ingest_client_id}-out-{socket.gethostname()[:8]}-{os.getpid()}"[:64]


class Publisher:
    """Owns one paho client on paho's network thread; thread-safe ``publish``."""

    def __init__(self, settings: Settings, survey_links: SurveyLinks | None = None) -> None:
        self.settings = settings
        self.survey_links = survey_links or survey_links_from(settings)
        """Makes the web survey links the kiosks' configs carry (None: kiosks show no QR code)."""
        self._connected = threading.Event()
        self._refused: str | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=_publisher_client_id(settings),
            protocol=mqtt.MQTTv5 if settings.mqtt_version == "5" else mqtt.MQTTv311,  # a clean session either way
        )
        username, password = settings.mqtt_credentials
        if username:
            client.username_pw_set(username, password)
        if settings.mqtt_tls:
            client.tls_set(
                ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)  # type: ignore[arg-type]  # typed int, takes any number
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        self._started = False
        self._lock = threading.Lock()
        self.connections = 0
        """Successful connects so far (a change means the broker connection came back)."""

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            _LOGGER.error("broker refused the publisher: %s", reason_code)
            return
        self._refused = None
        self.connections += 1  # the fleet loop checks for seq gaps soon after the broker came back
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    def start(self) -> Self:
        with self._lock:
            if not self._started:
                s = self.settings
                self._client.connect_async(s.mqtt_host, s.mqtt_port, keepalive=s.mqtt_keepalive_s)
                self._client.loop_start()
                self._started = True
        return self

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = PUBACK_TIMEOUT_S) -> None:
        self.start()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            why = f" (refused: {self._refused})" if self._refused else ""
            raise PublishError(f"not connected to the broker at {self.settings.mqtt_url}{why}")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        deadline = time.monotonic() + timeout
        while not info.is_published():
            if time.monotonic() > deadline:
                raise PublishError(f"no PUBACK for {topic} within {timeout:.0f}s")
            time.sleep(0.005)

    def close(self) -> None:
        with self._lock:
            if self._started:
                self._client.disconnect()
                self._client.loop_stop()
                self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
