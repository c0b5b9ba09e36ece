"""The ingest through a real Mosquitto: QoS 1, persistent session, ack after commit."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from fleet_server.core.settings import load_settings
from fleet_server.ingest import consumer as ingest_module
from fleet_server.ingest.consumer import Ingestor
from fleet_server.models import DeadLetter, FeedbackEvent
from palaute_wire import contract as c
from tests.support.server_factories import batch, event
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker


MQTT_VERSIONS = pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
"""The delivery contract holds in both protocols (PALAUTE_MQTT_VERSION)."""


@pytest.fixture
def mqtt_version():
    return "5"


@pytest.fixture
def settings(broker, db_url, mqtt_version):
    return load_settings(environ={}, mqtt_url=broker.url, database_url=db_url, mqtt_client_id="test-ingest",
                         mqtt_version=mqtt_version)


def spoke(broker, client_id, mqtt_version) -> bool:
    """Mosquitto's log names each client's protocol (p2: 3.1.1, p5: 5) and c0: a persistent session."""
    return f"as {client_id} (p{'5' if mqtt_version == '5' else '2'}, c0" in broker.log()


def publisher(broker, client_id="kiosk-pub") -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=30)
        assert info.is_published()


def one_event_messages(n: int, device="kalvia-1") -> tuple[list[tuple[str, bytes]], set]:
    events = [event(device=device) for _ in range(n)]
    topic = c.topic("kalvia", device, "events")
    return [(topic, c.encode(batch([e], device=device))) for e in events], {e.event_id for e in events}


def stored_ids(sessions) -> list:
    with sessions() as s:
        return list(s.scalars(select(FeedbackEvent.event_id)))


def wait_for_rows(sessions, n, timeout=30.0):
    def enough():
        with sessions() as s:
            return s.scalar(select(func.count()).select_from(FeedbackEvent)) >= n
    wait_until(enough, timeout, f"{n} event rows")


@MQTT_VERSIONS
def test_events_published_qos1_are_ingested_exactly_once(settings, sessions, broker):
    messages, ids = one_event_messages(200)
    pub = publisher(broker)
    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(10), "ingest did not subscribe"
        publish_all(pub, messages + messages[:20])  # the first 20 again: a kiosk resending
        wait_until(lambda: ingestor.counters.inserted + ingestor.counters.duplicates >= 220, 30.0, "220 events handled")
        assert ingestor.counters.snapshot()["received"] == 220
    pub.loop_stop()
    stored = stored_ids(sessions)
    assert len(stored) == 200 and set(stored) == ids
    assert spoke(broker, "test-ingest", settings.mqtt_version)


@MQTT_VERSIONS
def test_burst_published_while_ingest_is_away_arrives_whole(settings, sessions, broker):
    """3,000 messages (> Mosquitto's default 1,000-message queue) wait in the persistent session."""
    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(10)
    messages, ids = one_event_messages(3000)
    pub = publisher(broker)
    publish_all(pub, messages)
    pub.loop_stop()
    with Ingestor(settings, sessions) as ingestor:
        wait_for_rows(sessions, 3000, timeout=60)
        # The counters are added after store_batch's commit returns: the rows can show first.
        wait_until(lambda: ingestor.counters.inserted >= 3000, 10, "the ingest's count of its last commit")
        assert ingestor.counters.inserted == 3000
    stored = stored_ids(sessions)
    assert len(stored) == 3000 and set(stored) == ids


@MQTT_VERSIONS
def test_ingest_killed_mid_stream_loses_nothing_after_restart(settings, sessions, broker, mocker):
    """abort() drops the connection like a dead process: received-but-uncommitted messages come back."""
    real, slow = ingest_module.store_batch, threading.Event()
    slow.set()

    def slow_store(session_factory, batch):
        if slow.is_set():
            time.sleep(0.05)  # a slow database, so messages pile up un-acknowledged
        return real(session_factory, batch)

    mocker.patch.object(ingest_module, "store_batch", side_effect=slow_store)
    messages, ids = one_event_messages(2000)
    first = Ingestor(settings, sessions).start()
    assert first.wait_subscribed(10)
    pub = publisher(broker)
    sender = threading.Thread(target=publish_all, args=(pub, messages))
    sender.start()
    wait_until(lambda: first.backlog >= 20, 30.0, "received-but-uncommitted messages in the first ingest")
    first.abort()
    slow.clear()
    sender.join(60)
    pub.loop_stop()
    with Ingestor(settings, sessions):
        wait_for_rows(sessions, 2000, timeout=60)
    stored = stored_ids(sessions)
    assert len(stored) == 2000 and set(stored) == ids


def test_database_error_is_retried_and_loses_nothing(settings, sessions, broker, mocker):
    real = ingest_module.store_batch
    failures = {"left": 3}

    def flaky(session_factory, messages):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("INSERT ...", {}, Exception("database is down"))
        return real(session_factory, messages)

    store = mocker.patch.object(ingest_module, "store_batch", side_effect=flaky)  # the database failing
    messages, ids = one_event_messages(50)
    pub = publisher(broker)
    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(10)
        publish_all(pub, messages)
        wait_for_rows(sessions, 50)
        assert ingestor.counters.db_errors == 3
        assert store.call_count >= 4  # three failures, then the retries that stored them
    pub.loop_stop()
    assert set(stored_ids(sessions)) == ids


def test_invalid_messages_over_mqtt_are_dead_lettered_and_ingest_continues(settings, sessions, broker):
    good, ids = one_event_messages(5)
    bad = [
        (c.topic("kalvia", "kalvia-1", "events"), b"{not json"),
        (c.topic("kalvia", "kalvia-1", "events"), b'{"v": 2}'),
        (c.topic("lohtaja", "kalvia-1", "events"), good[0][1]),
    ]
    pub = publisher(broker)
    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(10)
        publish_all(pub, bad + good)
        wait_for_rows(sessions, 5)
        wait_until(lambda: ingestor.counters.dead_lettered == 3, 30.0, "3 dead letters")
    pub.loop_stop()
    with sessions() as s:
        reasons = sorted(s.scalars(select(DeadLetter.reason)))
    assert reasons == ["bad_json", "topic_mismatch", "unsupported_version"]
    assert set(stored_ids(sessions)) == ids


def test_shared_subscription_form_when_a_group_is_configured(broker, sqlite_url):
    s = load_settings(environ={}, mqtt_url=broker.url, database_url=sqlite_url, mqtt_shared_group="workers")
    assert ingest_module.subscriptions(s) == [
        "$share/workers/palaute/v1/+/+/events",
        "$share/workers/palaute/v1/+/+/status",
    ]


def test_two_workers_on_a_shared_subscription_split_the_load_and_count_once(broker, db_url, sessions):
    def worker(name):
        s = load_settings(environ={}, mqtt_url=broker.url, database_url=db_url, mqtt_client_id=name,
                          mqtt_shared_group="ingest")
        return Ingestor(s, sessions)

    messages, ids = one_event_messages(600)
    pub = publisher(broker)
    with worker("ingest-a") as a, worker("ingest-b") as b:
        assert a.wait_subscribed(10) and b.wait_subscribed(10)
        publish_all(pub, messages)
        wait_for_rows(sessions, 600)
        assert a.counters.received > 0 and b.counters.received > 0
        assert a.counters.received + b.counters.received == 600
    pub.loop_stop()
    assert set(stored_ids(sessions)) == ids


def test_a_refused_ingest_retries_seldom_and_recovers_once_the_broker_accepts_it(tmp_path, sqlite_url, mocker):
    """A broker that asks an HTTP hook refuses everyone while the hook is down (the server's own start):
    the ingest must not give up for good, nor hammer the broker."""
    import subprocess

    from fleet_server.core.db import make_engine, make_session_factory, migrate
    from fleet_server.devtools.local_broker import Mosquitto

    mocker.patch.object(ingest_module, "AUTH_RETRY_S", 3)  # the normal backoff here: 1 s
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "someone-else", "x"], check=True)
    passwd.chmod(0o600)
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    password = "ingest-" + "p" * 24
    with Mosquitto(tmp_path / "auth", allow_anonymous=False, extra_config=f"password_file {passwd}") as b:
        settings = load_settings(environ={}, mqtt_url=b.url, database_url=sqlite_url, mqtt_client_id="refused-ingest",
                                 mqtt_username="palaute-server", mqtt_password=password, mqtt_reconnect_max_s=1)
        with Ingestor(settings, make_session_factory(engine)) as ingest:
            wait_until(lambda: ingest.fatal_error is not None, 10, "the refusal")
            assert "refused" in ingest.fatal_error and not ingest.connected
            time.sleep(4)
            tries = b.log().count("disconnected, not authorised")
            assert 2 <= tries <= 3, f"{tries} attempts in about 4 s at AUTH_RETRY_S = 3"
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), "palaute-server", password], check=True)
            b.reload()
            assert ingest.wait_subscribed(10), "the ingest did not come back once accepted"
            assert ingest.fatal_error is None
    engine.dispose()


def assert_all_stored_through_ingest(settings, sessions, broker, n: int) -> None:
    """Publish ``n`` one-event messages to a running Ingestor; every one of them is stored."""
    messages, ids = one_event_messages(n)
    pub = publisher(broker)
    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(10), "ingest did not subscribe"
        publish_all(pub, messages)
        wait_until(lambda: ingestor.counters.inserted >= n, 30.0, f"{n} events stored")
    pub.loop_stop()
    assert set(stored_ids(sessions)) == ids


@pytest.fixture
def decoding_threads(monkeypatch) -> list[str]:
    """The thread of each events message's fast decoding (``store._fast_params``), in order."""
    from fleet_server.ingest import store

    threads: list[str] = []
    decode = store._fast_params

    def recording(*args):
        threads.append(threading.current_thread().name)
        return decode(*args)

    monkeypatch.setattr(store, "_fast_params", recording)
    return threads


def test_events_are_decoded_as_they_arrive_not_a_transaction_at_a_time(settings, sessions, broker, decoding_threads):
    """The network thread decodes each message as it comes; the preparer only gathers them (a whole
    transaction's decoding in one go kept the writer waiting for the interpreter after each database call)."""
    threads = decoding_threads
    assert_all_stored_through_ingest(settings, sessions, broker, 30)
    assert len(threads) == 30 and all(name.startswith("paho-mqtt-client") for name in threads), threads


def test_a_failure_decoding_on_arrival_loses_nothing(settings, sessions, broker, monkeypatch, caplog):
    def broken(*_args):
        raise RuntimeError("a bug in the arrival decoding")

    monkeypatch.setattr(ingest_module, "arrival_params", broken)
    assert_all_stored_through_ingest(settings, sessions, broker, 10)
    assert "the preparer decodes it" in caplog.text


def test_a_burst_beyond_the_backlog_bound_is_enqueued_undecoded_and_stored_whole(
    settings, sessions, broker, monkeypatch, decoding_threads
):
    """While catch-up events pile up in the lanes, the network thread stops decoding on arrival (it
    would reach a live press behind the burst later); the preparer decodes those messages instead."""
    threads = decoding_threads
    real_store = ingest_module.store_batch
    release = threading.Event()

    def held(factory, messages):  # the writer stays on its first transaction until the burst is in
        release.wait(30)
        return real_store(factory, messages)

    monkeypatch.setattr(ingest_module, "store_batch", held)
    monkeypatch.setattr(ingest_module, "ARRIVAL_DECODE_MAX_BACKLOG", 300)
    topic = c.topic("kalvia", "kalvia-1", "events")
    batches = [[event() for _ in range(100)] for _ in range(10)]
    pub = publisher(broker)
    with Ingestor(settings.model_copy(update={"ingest_batch_size": 1}), sessions) as ingestor:
        assert ingestor.wait_subscribed(10), "ingest did not subscribe"
        publish_all(pub, [(topic, c.encode(batch(events))) for events in batches])
        wait_until(lambda: ingestor.counters.received >= 10, 30.0, "the burst received")
        release.set()
        wait_until(lambda: ingestor.counters.inserted >= 1000, 30.0, "1000 events stored")
        apart = ingestor.decoder.batches if ingestor.decoder is not None else 0  # SQLite: one message each
        sqlite = ingestor.decoder is not None
    pub.loop_stop()
    assert set(stored_ids(sessions)) == {e.event_id for events in batches for e in events}
    # each message decoded once: on arrival, by the preparer or by the decoding process
    assert len(threads) + apart == 10, (threads, apart)
    on_arrival = sum(name.startswith("paho-mqtt-client") for name in threads)
    if sqlite:  # catch-up is the decoding process's, however short the backlog
        assert on_arrival == 0, threads
    else:
        assert threads[0].startswith("paho-mqtt-client"), threads  # into empty lanes: decoded on arrival
        assert on_arrival < 10, threads  # not all on arrival


def test_with_a_decoding_process_the_network_thread_decodes_only_live_presses(
    broker, sqlite_url, decoding_threads
):
    """SQLite: a live press is decoded as it arrives (it goes into the next transaction at once), a
    kiosk's catch-up is left to the decoding process even into empty lanes (decoding it on the
    network thread held the interpreter lock from the writer)."""
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    migrate(sqlite_url)
    sessions = make_session_factory(make_engine(sqlite_url))
    settings = load_settings(environ={}, mqtt_url=broker.url, database_url=sqlite_url, mqtt_client_id="test-ingest")
    topic = c.topic("kalvia", "kalvia-1", "events")
    catch_up = [[event() for _ in range(100)] for _ in range(3)]
    live = [[event()] for _ in range(5)]
    pub = publisher(broker)
    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(10), "ingest did not subscribe"
        wait_until(lambda: ingestor.decoder.decode([]) is not None, 30.0, "the decoding process up")
        for events in catch_up + live:  # one at a time, into empty lanes
            target = ingestor.counters.inserted + len(events)
            publish_all(pub, [(topic, c.encode(batch(events)))])
            wait_until(lambda n=target: ingestor.counters.inserted >= n, 30.0, "stored")
        apart = ingestor.decoder.batches
    pub.loop_stop()
    assert set(stored_ids(sessions)) == {e.event_id for events in catch_up + live for e in events}
    assert apart == len(catch_up)
    assert len(decoding_threads) == len(live), decoding_threads
    assert all(name.startswith("paho-mqtt-client") for name in decoding_threads), decoding_threads


def test_a_backlog_on_sqlite_is_decoded_in_a_process_of_its_own_and_stored_whole(
    broker, sqlite_url, decoding_threads, monkeypatch
):
    """Catch-up on SQLite: the preparer sends the transaction's messages to the decoding process
    (ingest/decoder.py), so the writer does not wait for the interpreter while the next one is decoded."""
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    monkeypatch.setattr(ingest_module, "ARRIVAL_DECODE_MAX_BACKLOG", -1)  # a burst beyond the bound

    migrate(sqlite_url)
    sessions = make_session_factory(make_engine(sqlite_url))
    settings = load_settings(environ={}, mqtt_url=broker.url, database_url=sqlite_url, mqtt_client_id="test-ingest")
    topic = c.topic("kalvia", "kalvia-1", "events")
    batches = [[event() for _ in range(100)] for _ in range(20)]
    pub = publisher(broker)
    with Ingestor(settings, sessions) as ingestor:
        assert ingestor.wait_subscribed(10), "ingest did not subscribe"
        wait_until(lambda: ingestor.decoder.decode([]) is not None, 30.0, "the decoding process up")
        publish_all(pub, [(topic, c.encode(batch(events))) for events in batches])
        wait_until(lambda: ingestor.counters.inserted >= 2000, 30.0, "2000 events stored")
        assert ingestor.decoder.batches >= 1
        process = ingestor.decoder._process
    pub.loop_stop()
    assert set(stored_ids(sessions)) == {e.event_id for events in batches for e in events}
    assert len(decoding_threads) < 20, decoding_threads  # the server decoded some at most (on arrival)
    assert not process.is_alive()  # stopped with the ingest

