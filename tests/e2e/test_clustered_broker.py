"""A clustered broker that asks the registry over HTTP: RabbitMQ 3.10 (Debian's package), MQTT 3.1.1.

Real parts: a private three-node RabbitMQ cluster (tests/support/rabbitmq.py; the MQTT plugin on
each node, every client authenticated and authorised by rabbitmq_auth_backend_http at a real
``palaute-server serve``'s /broker-auth/rabbitmq routes), the kiosk firmware's Kiosk in
simulate mode speaking MQTT 3.1.1, and the server's ingest speaking 3.1.1 on SQLite.

The kiosk publishes through node A, the ingest consumes through node B; a kiosk's publish
and subscription on another kiosk's topics are refused; node A is stopped and the kiosk
carries on through its fallback URL (node B) with its session. Why three nodes and not two
(a persistent session must outlive the node it was made on): docs/operations.md "RabbitMQ".
The figures (node start times, the failover) are printed, not asserted.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import threading
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.devtools.local_broker import free_port
from fleet_server.fleet.provisioning import add_station, provision_device
from fleet_server.models import FeedbackEvent
from kiosk.app import Kiosk
from kiosk.simulate import Simulator
from kiosk.uplink import UplinkTunables
from palaute_wire import contract as c
from tests.support import rabbitmq
from tests.support.kiosk_support import kiosk_config
from tests.support.server_factories import batch, event
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker

SERVER_USER, SERVER_PASSWORD = "palaute-server", "server-" + "s" * 32


def stored(sessions) -> list:
    with sessions() as s:
        return list(s.scalars(select(FeedbackEvent.event_id)))


def intruder_attempts(port: int, username: str, password: str) -> dict:
    """Another kiosk (valid credentials) publishes onto kalvia-1's events and subscribes to its commands."""
    outcome: dict = {"disconnected": threading.Event(), "suback": None}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv311,
                         clean_session=True)
    client.username_pw_set(username, password)
    client.on_disconnect = lambda *_a: outcome["disconnected"].set()
    client.on_subscribe = lambda _c, _u, _mid, codes, _p: outcome.update(suback=[str(rc) for rc in codes])
    connected = threading.Event()
    client.on_connect = lambda _c, _u, _f, rc, _p: connected.set() if not rc.is_failure else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(10), "the other kiosk could not connect with its own account"
        forged = event(device="kalvia-1")
        outcome["forged"] = forged.event_id
        info = client.publish(c.topic("kalvia", "kalvia-1", "events"), c.encode(batch([forged])), qos=1)
        deadline = time.monotonic() + 10
        while not (info.is_published() or outcome["disconnected"].is_set()) and time.monotonic() < deadline:
            time.sleep(0.02)
        outcome["publish_acked"] = info.is_published()
        outcome["publish_cut_off"] = outcome["disconnected"].is_set()  # how RabbitMQ refuses a publish
        if outcome["disconnected"].is_set():
            outcome["disconnected"].clear()
            client.reconnect()
            assert connected.wait(10)
        client.subscribe(c.topic("kalvia", "kalvia-1", "cmd"), qos=1)
        wait_until(lambda: outcome["suback"] is not None or outcome["disconnected"].is_set(), 10,
                   "an answer to the forbidden subscription")
        # Refused: a SUBACK failure code, or (RabbitMQ 3.10) the connection closed.
        outcome["subscribe_refused"] = outcome["disconnected"].is_set() or all(
            code != "Granted QoS 1" for code in outcome["suback"] or ())
    finally:
        client.loop_stop()
        client.disconnect()
    return outcome


@pytest.mark.timeout(300)  # three RabbitMQ nodes start in 30 to 60 s on a busy 2-core machine
def test_a_rabbitmq_cluster_asking_the_registry_carries_answers_once_and_a_kiosk_fails_over_a_lost_node(
        tmp_path, processes, mock_pins, caplog, capsys):
    why_not = rabbitmq.available()
    assert why_not is None, why_not  # run.sh test installs rabbitmq-server; this test does not skip
    db_url = f"sqlite:///{tmp_path / 'palaute.db'}"
    migrate(db_url)
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with sessions() as s, s.begin():
        add_station(s, "kalvia", "Kälviä")
        add_station(s, "lohtaja", "Lohtaja")
        _, secret = provision_device(s, "kalvia-1", "kalvia")
        _, other_secret = provision_device(s, "lohtaja-1", "lohtaja")

    token = secrets.token_urlsafe(32)
    http_port = free_port()
    cluster = rabbitmq.RabbitCluster(tmp_path / "rabbitmq", f"http://127.0.0.1:{http_port}", token)
    node_a, node_b, _node_c = cluster.nodes
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAUTE_")}
    env.update({
        "PALAUTE_DATABASE_URL": db_url, "PALAUTE_MODE": "development", "PALAUTE_HTTP_PORT": str(http_port),
        "PALAUTE_MQTT_URL": node_b.url, "PALAUTE_MQTT_VERSION": "3.1.1", "PALAUTE_MQTT_RECONNECT_MAX_S": "1",
        "PALAUTE_MQTT_USERNAME": SERVER_USER, "PALAUTE_MQTT_PASSWORD": SERVER_PASSWORD,
        "PALAUTE_BROKER_AUTH_TOKEN": token, "PALAUTE_LOG_LEVEL": "info",
    })
    server_log = tmp_path / "server.log"
    server = None

    def health() -> dict:
        try:
            return httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return {}

    kiosk = None
    caplog.set_level(logging.INFO, logger="kiosk.uplink")
    try:
        started = time.monotonic()
        cluster.start()
        cluster_up_s = time.monotonic() - started
        # The server (and its ingest) only now that every node has joined (a node opens its MQTT listener
        # after joining): a quorum queue's members are the nodes clustered when it is declared, and an
        # ingest session made before node C joined would not survive the loss of node A.
        server = proc = processes.start([sys.executable, "-m", "fleet_server.cli", "serve"], env=env, log=server_log)
        cluster.wait_ready(SERVER_USER, SERVER_PASSWORD)  # through the server's hook, so after it is up
        cluster_ready_s = time.monotonic() - started
        try:
            wait_until(lambda: proc.poll() is None and health().get("mqtt") == "connected", 60,
                       "the ingest connected to node B through the registry's hook")
        except AssertionError:
            said = [line for line in server_log.read_text(errors="replace").splitlines() if "ingest" in line]
            raise AssertionError("the ingest did not connect: " + "\n".join(said[-15:]) + "\nnode B:\n"
                                 + "\n".join(line for line in node_b.log().splitlines() if "[error]" in line)[-3000:]
                                 ) from None

        config = kiosk_config(tmp_path / "kiosk", node_a.url, broker={
            "mqtt_version": "3.1.1", "fallback_urls": [node_b.url], "username": "kalvia-1", "password": secret,
        })
        kiosk = Kiosk(config, clock_synced_override=True,
                      uplink_tunables=UplinkTunables(loop_timeout_s=0.02, ack_timeout_s=10)).start()
        sim = Simulator(kiosk, kiosk.config.simulate, seed=1)
        wait_until(lambda: kiosk.uplink.connected, 20, "the kiosk connected to node A")
        assert kiosk.uplink.broker_url == node_a.url
        before = {str(sim.press(v).event_id) for v in [1, 2, 3, 4] * 5}
        wait_until(lambda: {str(e) for e in stored(sessions)} >= before, 30,
                   "the answers published through node A stored from node B")
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 10, "the PUBACKs")

        def sessions_made() -> dict[str, str]:  # the persistent sessions' queues, as the nodes log them
            found = re.findall(r"ra: started cluster %2F_mqtt-subscription-(\S+) with (\d+) servers",
                               "".join(n.log() for n in cluster.nodes))
            return {name: members for name, members in found}

        own = f"{kiosk.uplink.client_id}qos1"
        # A node writes its log asynchronously: wait for both sessions' lines, then check them.
        wait_until(lambda: own in sessions_made() and any(n.startswith("palaute-ingest-") for n in sessions_made()),
                   20, "the nodes' log lines of the kiosk's and the ingest's sessions")
        made = sessions_made()  # each session on all 3 nodes
        assert made.pop(own) == "3", made
        assert [(n.startswith("palaute-ingest-"), m) for n, m in made.items()] == [(True, "3")], made

        tried = intruder_attempts(node_a.mqtt_port, "lohtaja-1", other_secret)
        assert not tried["publish_acked"] and tried["publish_cut_off"], tried  # no PUBACK: the connection closed
        assert tried["subscribe_refused"], tried

        lost_at = time.monotonic()
        stop_s = cluster.stop_node(node_a)
        after = {str(sim.press(v).event_id) for v in [4, 3, 2, 1] * 5}
        wait_until(lambda: kiosk.uplink.connected and kiosk.uplink.broker_url == node_b.url, 40,
                   "the kiosk on its fallback URL, node B")
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 30, "node B's PUBACKs")
        failover_s = time.monotonic() - lost_at
        wait_until(lambda: {str(e) for e in stored(sessions)} >= before | after, 30, "every answer stored")
        ids = [str(e) for e in stored(sessions)]
        assert len(ids) == len(set(ids)) == 40 and set(ids) == before | after
        assert str(tried["forged"]) not in ids
        resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"connected to {node_b.url}")]
        assert resumed and resumed[-1].endswith("(session resumed)"), resumed  # its quorum queue outlived node A
        assert health().get("mqtt") == "connected"
    finally:
        if kiosk is not None:
            kiosk.close()
        if server is not None:
            processes.stop(server)
        cluster.close()
        engine.dispose()
    with capsys.disabled():
        starts = ", ".join(f"{n.name.rsplit('-', 1)[1]} {n.started_in_s:.1f}s" for n in cluster.nodes
                           if n.started_in_s is not None)
        ready = ", ".join(f"{n.ready_in_s:.1f}s" for n in cluster.nodes if n.ready_in_s is not None)
        print(f"\n  RabbitMQ 3.10 cluster of {len(cluster.nodes)} up in {cluster_up_s:.1f}s (MQTT listeners: {starts}), "
              f"accepting MQTT sessions after {cluster_ready_s:.1f}s (nodes: {ready}); "
              f"node A stopped (SIGTERM) in {stop_s:.1f}s; the kiosk on node B with every answer acknowledged "
              f"{failover_s:.1f}s after the stop began")
