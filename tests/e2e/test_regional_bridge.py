"""The regional-broker recipe (deploy/mosquitto/regional-bridge.conf): answers published to a
regional Mosquitto reach the fleet server's ingest on the central one, and an outage of the
bridge link (the central broker down) loses nothing.

Real parts: two private Mosquittos (the recipe's bridge lines, pointed at the local central
one), the fleet server's Ingestor on SQLite, paho as the kiosk.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import Mosquitto
from fleet_server.ingest.consumer import Ingestor
from fleet_server.models import FeedbackEvent
from palaute_wire import contract as c
from tests.support.kiosk_support import wait_until
from tests.support.server_factories import batch, event

pytestmark = pytest.mark.broker

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "regional-bridge.conf"


def bridge_lines(central_port: int) -> str:
    """The recipe as shipped, aimed at the local central broker without TLS or an account."""
    out = []
    for line in RECIPE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"(bridge_cafile|remote_username|remote_password)\b", line):
            continue
        out.append(f"address 127.0.0.1:{central_port}" if line.startswith("address ") else line)
    return "\n".join(out)




def test_answers_cross_the_bridge_and_an_outage_of_the_link_loses_nothing(tmp_path, sqlite_url):
    central = Mosquitto(tmp_path / "central").start()
    regional = Mosquitto(tmp_path / "regional", extra_config=bridge_lines(central.port)).start()
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    settings = load_settings(environ={}, mqtt_url=central.url, database_url=sqlite_url, mqtt_client_id="central",
                             mqtt_reconnect_max_s=1)
    kiosk = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kalvia-1")
    topic = c.topic("kalvia", "kalvia-1", "events")

    def send(seqs):
        infos = [kiosk.publish(topic, c.encode(batch([event(seq=s)])), qos=1) for s in seqs]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()  # the regional broker has it

    def stored() -> int:
        with factory() as s:
            return s.scalar(select(func.count()).select_from(FeedbackEvent)) or 0

    try:
        with Ingestor(settings, factory) as ingest:
            assert ingest.wait_subscribed(10)
            kiosk.connect("127.0.0.1", regional.port)
            kiosk.loop_start()
            wait_until(lambda: "Connecting bridge" in regional.log() or "bridge" in regional.log().lower(), 10,
                       "the bridge to connect")
            time.sleep(1)
            send(range(1, 51))
            wait_until(lambda: stored() == 50, 30, "the first 50 answers across the bridge")

            central.stop()  # the link is down: the regional broker queues for the bridge
            send(range(51, 101))
            central.start()
            wait_until(lambda: stored() == 100, 60, "the 50 answers queued during the outage")
    finally:
        kiosk.loop_stop()
        regional.stop()
        central.stop()
        engine.dispose()
