"""Broker persistence: what Mosquitto acknowledged survives its kill -9 (deploy, demo and test configs)."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet_server.devtools.local_broker import Mosquitto

pytestmark = pytest.mark.broker

DEPLOY_CONF = Path(__file__).parents[2] / "deploy/mosquitto/palaute.conf"
TOPIC = "palaute/v1/kalvia/kalvia-1/events"


def _session(port: int, on_message=None) -> mqtt.Client:
    """The ingest's kind of session: fixed id, clean start off, an expiry."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="persist-ingest", protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    return client


def test_the_deploy_broker_config_saves_every_second():
    lines = dict(re.findall(r"^(\w+) (.+)$", DEPLOY_CONF.read_text(), re.MULTILINE))
    assert lines["persistence"] == "true"
    assert float(lines["autosave_interval"]) <= 1
    assert lines.get("autosave_on_changes", "false") == "false"


def test_acknowledged_messages_queued_for_the_ingest_survive_a_broker_kill_9(tmp_path):
    with Mosquitto(tmp_path / "broker") as broker:
        sub = _session(broker.port)
        sub.subscribe(TOPIC, qos=1)[1]
        time.sleep(0.2)
        sub.disconnect()
        sub.loop_stop()

        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kalvia-1", protocol=MQTTProtocolVersion.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for n in range(20):
            pub.publish(TOPIC, f"batch {n}".encode(), qos=1).wait_for_publish(10)  # PUBACK: the kiosk forgets it
        acked_at = time.time()
        pub.loop_stop()
        snapshot = broker.workdir / "mosquitto.db"
        deadline = time.monotonic() + 10
        while not (snapshot.exists() and snapshot.stat().st_mtime > acked_at):  # the next autosave, no fixed sleep
            assert time.monotonic() < deadline, "no autosave within 10 s of the PUBACKs"
            time.sleep(0.05)
        broker.proc.send_signal(signal.SIGKILL)
        broker.proc.wait()
        broker.proc = None
        broker.start()

        got: list[bytes] = []
        done = threading.Event()

        def on_message(_c, _u, message):
            got.append(message.payload)
            if len(got) == 20:
                done.set()

        back = _session(broker.port, on_message)
        try:
            assert done.wait(10), f"only {len(got)} of 20 acknowledged messages survived"
        finally:
            back.loop_stop()
