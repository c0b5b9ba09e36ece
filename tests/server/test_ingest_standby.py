"""One active consumer per deployment: the others stand by and take the same broker session
over when it dies; a session taken over from outside stops the ingest instead of a fight.

Real parts: a private Mosquitto, SQLite and PostgreSQL, paho clients as kiosks.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import func, select

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.ingest.active import ActiveIngest
from fleet_server.ingest.consumer import Ingestor
from fleet_server.models import FeedbackEvent
from tests.server.test_ingest_mqtt import one_event_messages, publish_all, publisher, wait_until

pytestmark = pytest.mark.broker


def _count(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


def test_one_process_consumes_and_a_standby_takes_the_same_session_over_when_it_dies(broker, db_url):
    migrate(db_url)
    settings = load_settings(environ={}, mqtt_url=broker.url, database_url=db_url, mqtt_client_id="county-ingest",
                             leader_poll_s=0.2)
    engines = [make_engine(db_url), make_engine(db_url)]
    factory = make_session_factory(engines[0])
    first = ActiveIngest(settings, make_session_factory(engines[0]), engines[0]).start()
    second = ActiveIngest(settings, make_session_factory(engines[1]), engines[1]).start()
    pub = publisher(broker)
    try:
        assert first.wait_subscribed(10)
        time.sleep(1.0)  # the second asks for the lock a few times meanwhile
        assert (first.role, second.role) == ("active", "standby")
        before, _ = one_event_messages(100)
        publish_all(pub, before)
        wait_until(lambda: _count(factory) == 100, what="100 answers through the active consumer")

        first.abort()  # dies: no DISCONNECT, its database session (and the lock) gone
        during, _ = one_event_messages(200)
        publish_all(pub, during)  # queued in the session nobody holds
        assert second.wait_subscribed(20), "the standby did not take over"
        wait_until(lambda: _count(factory) == 300, what="the answers queued while nobody consumed")
        assert second.counters.inserted == 200 and second.role == "active"
    finally:
        pub.loop_stop()
        second.stop()
        first.stop()
        for e in engines:
            e.dispose()


def test_a_session_taken_over_from_outside_stops_the_ingest_instead_of_fighting(broker, sqlite_url):
    migrate(sqlite_url)
    settings = load_settings(environ={}, mqtt_url=broker.url, database_url=sqlite_url, mqtt_client_id="dup-ingest")
    engine = make_engine(sqlite_url)
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dup-ingest", protocol=MQTTProtocolVersion.MQTTv5)
    try:
        with Ingestor(settings, make_session_factory(engine)) as ingest:
            assert ingest.wait_subscribed(10)
            intruder.connect("127.0.0.1", broker.port)
            intruder.loop_start()
            wait_until(lambda: ingest.fatal_error is not None, what="the ingest noticing the takeover")
            assert "taken over" in ingest.fatal_error and "PALAUTE_MQTT_CLIENT_ID" in ingest.fatal_error
            time.sleep(3)  # paho would reconnect after 1 s: it must not
            assert not ingest.connected and intruder.is_connected()
    finally:
        intruder.loop_stop()
        intruder.disconnect()
        engine.dispose()


def test_a_client_id_connected_for_another_deployment_is_refused_at_start(broker, tmp_path):
    one = f"sqlite:///{tmp_path / 'one.db'}"
    two = f"sqlite:///{tmp_path / 'two.db'}"
    engines = {}
    ingests = []
    try:
        for url in (one, two):
            migrate(url)
            engines[url] = make_engine(url)
            settings = load_settings(environ={}, mqtt_url=broker.url, database_url=url, mqtt_client_id="same-id")
            ingests.append(ActiveIngest(settings, make_session_factory(engines[url]), engines[url]).start())
            if url == one:
                assert ingests[0].wait_subscribed(10)
        assert ingests[1].refused is not None and "already connected for another deployment" in ingests[1].refused
        assert ingests[1].role == "standby" and ingests[0].connected
        time.sleep(2)
        assert ingests[0].connected and ingests[0].fatal_error is None  # never kicked
    finally:
        for ingest in reversed(ingests):
            ingest.stop()
        for e in engines.values():
            e.dispose()


@pytest.mark.postgres
def test_a_deadlock_with_another_transaction_is_retried_and_logged_as_a_deadlock(postgres_url, caplog):
    import threading

    from sqlalchemy import create_engine, text

    from fleet_server.ingest.store import store_batch
    from tests.support.server_factories import event, events_message

    migrate(postgres_url)
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    store_batch(factory, [events_message([event(seq=1)])])  # the kiosk exists
    settings = load_settings(environ={}, database_url=postgres_url, mqtt_client_id="deadlock-ingest")
    ingest = Ingestor(settings, factory)  # not started: its writer's store-and-retry, called directly
    answer = event(seq=2)
    other = create_engine(postgres_url).connect()
    try:
        other.execute(text("SET deadlock_timeout = '10s'"))  # the ingest is the one PostgreSQL rolls back
        other.execute(text("UPDATE devices SET queue_depth = 1 WHERE id = 'kalvia-1'"))  # holds the kiosk's row
        done = threading.Thread(target=ingest._store, args=([events_message([answer])],))
        done.start()
        time.sleep(0.5)  # the ingest inserted the answer and now waits for the kiosk's row
        # ... while the other transaction waits for the answer's row: a deadlock.
        other.execute(text(
            "INSERT INTO feedback_events (event_id, station_id, device_id, kind, value, question_id, lang, ts, "
            "received_at, seq, clock_synced, burst, out_of_hours, survey_version) VALUES (:id, 'kalvia', 'kalvia-1', "
            "'smiley', 4, "
            "'visit', 'fi', now(), now(), 2, true, false, false, 1) ON CONFLICT (event_id) DO NOTHING"),
            {"id": answer.event_id})
        other.rollback()
        done.join(30)
        assert not done.is_alive()
    finally:
        other.close()
    assert ingest.counters.deadlocks >= 1
    assert any("deadlock with another transaction" in r.getMessage() for r in caplog.records)
    assert not any("database unavailable" in r.getMessage() for r in caplog.records)
    assert _count(factory) == 2
    engine.dispose()
