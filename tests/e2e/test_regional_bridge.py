"""The regional-broker recipe (deploy/mosquitto/regional-bridge.conf): answers published to a
regional Mosquitto reach the fleet server's ingest on the central one, and an outage of the
bridge link (the central broker down) loses nothing.

Real parts: two private Mosquittos (the recipe's bridge lines, pointed at the local central
one), the fleet server's Ingestor on SQLite, paho as the kiosk. The central broker runs on the
password and ACL files ``broker sync`` writes from the registry, the bridge with the account
``palaute-server broker bridge-add`` made (``add_bridge``).
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
from fleet_server.fleet.provisioning import BrokerFiles, add_bridge, add_station, provision_device, sync_broker
from fleet_server.ingest.consumer import Ingestor
from fleet_server.models import FeedbackEvent
from palaute_wire import contract as c
from tests.support.server_factories import batch, event
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker

SERVER_PASSWORD = "server-" + "p" * 32
RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "regional-bridge.conf"


def bridge_lines(central_port: int, username: str, password: str) -> str:
    """The recipe as shipped, aimed at the local central broker without TLS, with the bridge's account."""
    out = []
    for line in RECIPE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line.startswith("bridge_cafile"):
            continue
        line = re.sub(r"^remote_username .*", f"remote_username {username}", line)
        line = re.sub(r"^remote_password .*", f"remote_password {password}", line)
        out.append(f"address 127.0.0.1:{central_port}" if line.startswith("address ") else line)
    return "\n".join(out)




def test_answers_cross_the_bridge_and_an_outage_of_the_link_loses_nothing(tmp_path, sqlite_url):
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    with factory() as s, s.begin():
        add_station(s, "kalvia", "Kälviä")
        provision_device(s, "kalvia-1", "kalvia")
        bridge_secret = add_bridge(s, "region")
    files = BrokerFiles(tmp_path / "auth" / "passwd", tmp_path / "auth" / "acl")
    with factory() as s:
        assert "1 bridge)" in sync_broker(s, files, "palaute-server", SERVER_PASSWORD)
    assert "user palaute-bridge-region" in files.acl_file.read_text()
    central = Mosquitto(tmp_path / "central", allow_anonymous=False,
                        extra_config=f"password_file {files.password_file}\nacl_file {files.acl_file}").start()
    regional = Mosquitto(tmp_path / "regional",
                         extra_config=bridge_lines(central.port, "palaute-bridge-region", bridge_secret)).start()
    settings = load_settings(environ={}, mqtt_url=central.url, database_url=sqlite_url, mqtt_client_id="central",
                             mqtt_reconnect_max_s=1, mqtt_username="palaute-server", mqtt_password=SERVER_PASSWORD)
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
            wait_until(lambda: "as palaute-bridge-region" in central.log(), 10,
                       "the bridge to connect with its account")
            time.sleep(1)
            send(range(1, 51))
            wait_until(lambda: stored() == 50, 30, "the first 50 answers across the bridge")
            # The other way: a command the server publishes centrally reaches the region's kiosk.
            commands: list[bytes] = []
            kiosk.on_message = lambda _c, _u, m: commands.append(m.payload)
            kiosk.subscribe(c.topic("kalvia", "kalvia-1", "cmd"), qos=1)
            time.sleep(0.5)
            server = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="server-pub")
            server.username_pw_set("palaute-server", SERVER_PASSWORD)
            server.connect("127.0.0.1", central.port)
            server.loop_start()
            server.publish(c.topic("kalvia", "kalvia-1", "cmd"), b"blink", qos=1).wait_for_publish(10)
            server.loop_stop()
            server.disconnect()
            wait_until(lambda: commands == [b"blink"], 10, "the command across the bridge")

            central.stop()  # the link is down: the regional broker queues for the bridge
            send(range(51, 101))
            central.start()
            wait_until(lambda: stored() == 100, 60, "the 50 answers queued during the outage")
    finally:
        kiosk.loop_stop()
        regional.stop()
        central.stop()
        engine.dispose()
