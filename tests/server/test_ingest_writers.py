"""Transactions in flight at once (``ingest_writers``, PostgreSQL): faster, and nothing goes back in time.

Two writers commit in whichever order the database lets them, so what a transaction reads
of its senders may be older than what the other one commits meanwhile. The store keeps
that harmless: a sender's times only move forward, and a batch with statuses locks its
senders and reads their last status again before it applies its own (``pg_writer.locked_statuses``).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select, text

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.ingest import consumer as ingest_module
from fleet_server.ingest.consumer import Ingestor
from fleet_server.ingest.store import handle_batch, store_batch
from fleet_server.models import Device, FeedbackEvent
from palaute_wire import contract as c
from tests.support.server_factories import T0, batch, event, events_message, status_message
from tests.support.waiting import wait_until

ON_POSTGRESQL = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                                        indirect=True)
"""Only PostgreSQL keeps two transactions in flight (``sessions`` on it alone)."""


def _device(sessions) -> Device:
    with sessions() as s:
        return s.get(Device, "kalvia-1")


def test_a_transaction_committed_late_does_not_move_the_senders_times_back(sessions):
    store_batch(sessions, [events_message([event()], received_at=T0 + timedelta(minutes=1))])
    store_batch(sessions, [events_message([event()], received_at=T0)])  # came in first, committed last
    device = _device(sessions)
    assert (device.last_event_at, device.last_seen_at) == (T0 + timedelta(minutes=1),) * 2


@ON_POSTGRESQL
def test_an_older_status_does_not_overwrite_a_newer_one_the_other_writer_commits_meanwhile(sessions):
    store_batch(sessions, [events_message([event()])])
    newer = status_message(connected_at=T0, sent_at=T0 + timedelta(seconds=20), queue_depth=5)
    older = status_message(connected_at=T0, sent_at=T0 + timedelta(seconds=10), queue_depth=99)
    done: dict = {}
    with sessions() as first:
        handle_batch(first, [newer])  # one writer has applied the newer status, not committed yet
        other = threading.Thread(target=lambda: done.update(result=store_batch(sessions, [older])))
        other.start()
        other.join(1.0)
        assert other.is_alive()  # the other writer waits for the first one's transaction
        first.commit()
    other.join(30)
    assert done["result"].statuses == 1
    device = _device(sessions)
    assert (device.queue_depth, device.status_sent_at) == (5, T0 + timedelta(seconds=20))


@ON_POSTGRESQL
def test_a_new_sender_registered_by_one_writer_holds_the_other_only_at_the_shared_rows(sessions):
    """Both writers' batches come from a kiosk the registry does not know yet. The first registers it
    in a short transaction of its own, so the second, while the first is still open, gets through
    its registration and its events and waits only at the rows both add to (the rollup cells and
    the sender's times), not at the registration (where it used to wait for the first's commit)."""
    done: dict = {}
    with sessions() as first:
        handle_batch(first, [events_message([event(device="kalvia-9")], device="kalvia-9")])
        other = threading.Thread(target=lambda: done.update(result=store_batch(
            sessions, [events_message([event(device="kalvia-9")], device="kalvia-9")])))
        other.start()
        # From a connection of its own, in autocommit: a transaction sees pg_stat_activity as it first read it.
        with first.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
            waiting = wait_until(lambda: watch.execute(text(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )).scalars().all(), timeout=20, what="the second writer waiting")
        assert len(waiting) == 1 and waiting[0].startswith("WITH ins AS (INSERT INTO feedback_events"), waiting
        first.rollback()  # the first writer's transaction fails: its sender stays registered
    other.join(30)
    assert done["result"].inserted == 1
    with sessions() as s:
        assert s.get(Device, "kalvia-9").station_id == "kalvia"
        assert s.scalar(select(func.count()).select_from(FeedbackEvent).where(FeedbackEvent.device_id == "kalvia-9")) == 1


def test_sqlite_keeps_one_writer_whatever_the_setting(sqlite_url):
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    settings = load_settings(environ={}, database_url=sqlite_url, ingest_writers=4)
    assert Ingestor(settings, make_session_factory(engine)).writer_count == 1
    engine.dispose()


@pytest.mark.broker
@ON_POSTGRESQL
def test_two_writers_keep_two_transactions_in_flight_and_store_each_event_once(broker, db_url, sessions, monkeypatch):
    settings = load_settings(environ={}, mqtt_url=broker.url, database_url=db_url,
                             mqtt_client_id="test-writers", ingest_writers=2, ingest_batch_size=1)
    together = threading.Barrier(2, timeout=20)
    calls, inside, peak, lock = [0], [0], [0], threading.Lock()
    real = ingest_module.store_batch

    def store(factory, messages):
        with lock:
            calls[0] += 1
            first_two = calls[0] <= 2
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        try:
            if first_two:
                together.wait()  # the first two transactions meet: both are open at once
            return real(factory, messages)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(ingest_module, "store_batch", store)
    events = [event() for _ in range(40)]

    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(20) and ingestor.writer_count == 2
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kiosk-pub")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for e in events:
            pub.publish(c.topic("kalvia", "kalvia-1", "events"), c.encode(batch([e])), qos=1).wait_for_publish(10)

        def stored() -> int:
            with sessions() as s:
                return s.scalar(select(func.count()).select_from(FeedbackEvent))
        wait_until(lambda: stored() == len(events), 30, "every event stored")
        pub.disconnect()
        pub.loop_stop()
    assert peak[0] == 2 and not together.broken
    with sessions() as s:
        assert set(s.scalars(select(FeedbackEvent.event_id))) == {e.event_id for e in events}
