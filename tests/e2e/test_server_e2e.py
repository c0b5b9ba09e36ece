"""The whole server against a real Mosquitto: status and Last Will reach the devices API,
and a server process killed with SIGKILL mid-stream loses nothing once restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import func, select

from fleet_server.app import create_app
from fleet_server.core.db import make_engine, make_session_factory
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import free_port
from fleet_server.models import FeedbackEvent
from palaute_wire import contract as c
from tests.support.auth_helpers import bearer
from tests.support.server_factories import T0, batch, event, status
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker


def device_state(client) -> dict:
    devices = client.get("/api/v1/devices").json()
    return devices[0] if devices else {}


def test_status_heartbeat_and_last_will_update_the_devices_api(broker, db_url):
    settings = load_settings(
        environ={}, database_url=db_url, mqtt_url=broker.url, mqtt_client_id="e2e-ingest", mode="development"
    )
    status_topic = c.topic("kalvia", "kalvia-1", "status")
    kiosk = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kalvia-1", protocol=MQTTProtocolVersion.MQTTv5)
    kiosk.will_set(status_topic, c.encode(status(online=False)), qos=1, retain=True)
    with TestClient(create_app(settings)) as client:
        client.headers.update(bearer(client, "it"))
        assert client.app.state.ingestor.wait_subscribed(10)
        kiosk.connect("127.0.0.1", broker.port)
        kiosk.loop_start()
        kiosk.publish(
            status_topic, c.encode(status(software_version="2.0.1", queue_depth=12, sent_at=T0)), qos=1, retain=True
        ).wait_for_publish(10)
        wait_until(lambda: device_state(client).get("online") is True, 30.0, "the device to show online")
        assert device_state(client)["queue_depth"] == 12
        # The kiosk dies without a DISCONNECT: the broker publishes its Last Will.
        kiosk.loop_stop()
        kiosk.socket().close()
        wait_until(lambda: device_state(client).get("online") is False, 30.0, "the Last Will to mark it offline")
        assert device_state(client)["software_version"] == "2.0.1"
        assert client.get("/healthz").json()["mqtt"] == "connected"


def _serve(processes, env: dict) -> subprocess.Popen:
    return processes.start(
        [sys.executable, "-m", "fleet_server.cli", "serve"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_ingest_connected(proc: subprocess.Popen, port: int) -> None:
    def ready():
        assert proc.poll() is None, f"server exited: {proc.stderr.read().decode()[-3000:]}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json().get("mqtt") == "connected"
        except httpx.HTTPError:
            return False
    wait_until(ready, 30, "the server to serve and connect to MQTT")


def test_server_process_killed_mid_stream_loses_nothing(broker, db_url, tmp_path, processes):
    port = free_port()
    env = {
        **os.environ,
        "PALAUTE_DATABASE_URL": db_url,
        "PALAUTE_MQTT_URL": broker.url,
        "PALAUTE_HTTP_PORT": str(port),
        "PALAUTE_MQTT_CLIENT_ID": "e2e-serve",
        "PALAUTE_LOG_LEVEL": "warning",
        "PALAUTE_MODE": "development",
    }
    env.pop("PALAUTE_CONFIG_FILE", None)
    events = [event(seq=i) for i in range(1, 2001)]
    topic = c.topic("kalvia", "kalvia-1", "events")
    messages = [c.encode(batch(events[i:i + 4])) for i in range(0, len(events), 4)]  # 500 messages

    engine = make_engine(db_url)
    sessions = make_session_factory(engine)

    def rows() -> int:
        try:
            with sessions() as s:
                return s.scalar(select(func.count()).select_from(FeedbackEvent))
        except Exception:  # noqa: BLE001 - table not created yet
            return 0

    server = _serve(processes, env)
    try:
        _wait_ingest_connected(server, port)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()

        def send():  # paced, so the kill always lands mid-stream
            infos = []
            for m in messages:
                infos.append(pub.publish(topic, m, qos=1))
                time.sleep(0.003)
            for info in infos:
                info.wait_for_publish(30)

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: rows() >= 200, 30.0, "the first server to be mid-stream")
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        sender.join(60)
        pub.loop_stop()
        assert rows() < 2000, "the kill came too late to prove anything"

        server = _serve(processes, env)
        _wait_ingest_connected(server, port)
        wait_until(lambda: rows() >= 2000, 60, "all 2,000 events after the restart")
        with sessions() as s:
            stored = set(s.scalars(select(FeedbackEvent.event_id)))
        assert stored == {e.event_id for e in events}
        assert rows() == 2000
    finally:
        engine.dispose()
