"""The MQTT consumer: kiosk messages in, database rows out, nothing lost or counted twice.

Delivery contract (see ../DESIGN "Delivery guarantees"):
- The ingest keeps a persistent MQTT v5 session (fixed client id, clean start
  off, a session expiry), subscribes with QoS 1, so the broker queues for it
  while it is away. With ``PALAUTE_MQTT_VERSION=3.1.1`` the session is
  ``clean_session=False`` and the broker's own setting bounds its life.
- Acknowledgement is manual: the broker gets the PUBACK for a message only
  after the transaction holding its rows has committed. A crash before the
  commit means no PUBACK, so the broker delivers the message again.
- Redelivery is harmless: the store (``store.py``) inserts events once by id.
- A database error leaves the whole batch un-acknowledged and is retried with
  a capped backoff.

The database side lives in ``store.py`` (``handle_batch``/``store_batch``, no
MQTT); ``Ingestor`` here wraps it with the paho-mqtt client (whose network thread
decodes events messages as they arrive, ``store.arrival_params``), a preparer thread
that gathers the next transaction, and writer threads that commit: on PostgreSQL
``ingest_writers`` (2) transactions in flight, each on its own connection, so the
database works on one while the server prepares, acks and sends the next
(bench/bench_ingest.py); on SQLite one, and the preparer has a catch-up transaction's
messages decoded by a process of its own (``decoder.py``), so that the writer does not
wait for the interpreter lock meanwhile; there the network thread decodes only live messages.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any, Self

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from fleet_server.core.clock import utcnow
from fleet_server.core.settings import Settings
from fleet_server.ingest.decoder import Decoder
from fleet_server.ingest.lanes import LIVE_MAX_EVENTS, IngestLanes
from fleet_server.ingest.store import (
    REASON_INGEST_ERROR,
    TX_MAX_EVENTS,
    BatchResult,
    InboundMessage,
    PreparedBatch,
    arrival_params,
    count_events,
    handle_batch,
    store_batch,
    store_dead_letter,
)
from palaute_wire import contract

__all__ = [
    "BatchResult",
    "InboundMessage",
    "IngestCounters",
    "Ingestor",
    "handle_batch",
    "store_batch",
    "subscriptions",
]

_LOGGER = logging.getLogger(__name__)


RETRY_DELAY_MIN_S = 0.1
"""First wait after a failed commit; doubles up to the reconnect cap."""

POLL_S = 0.2
"""How often an idle writer thread checks whether it should stop."""

INFLIGHT_MESSAGES = 4000
"""Receive Maximum: how many un-acknowledged messages the broker may push to us (about 40 MB of
full batches). Large, so a backlog comes into the lanes (where live presses overtake it) instead
of waiting in the broker's FIFO queue; the broker's own max_inflight_messages must allow it."""

ARRIVAL_DECODE_MAX_BACKLOG = 2 * TX_MAX_EVENTS
"""The network thread decodes each events message as it arrives (``arrival_params``) only while
at most this many catch-up events wait in the lanes. Beyond that a burst is coming in faster than
the writer commits: the thread only enqueues, so it reaches a live press behind the burst sooner
(decoding on arrival made such a press wait p99 840-895 ms instead of 125 ms while 100k answers
came in at once, bench_ingest_latency.py), and the preparer decodes those messages.

With a decoding process (SQLite) the thread decodes live messages only, whatever the backlog: the
process decodes catch-up in parallel, where decoding it here held the interpreter lock from the
writer (the server's CPU per answer end to end 14-15 µs instead of 17, bench_ingest.py)."""

BAD_CREDENTIALS = (0x86, 0x87)
"""CONNACK reason codes (bad user name or password, not authorised; 3.1.1's codes 4 and 5 read the same)."""
AUTH_RETRY_S = 30
"""After a refusal for credentials, reconnect this seldom (not in a hot loop) until the broker accepts.
Not never: a broker asking an HTTP hook (RabbitMQ, go-auth) refuses everyone while the hook is down,
e.g. during the very start of the server that answers it."""


# --------------------------------------------------------------------- counters


class IngestCounters:
    """Running totals for the demo, /healthz and bench/; safe to read from any thread."""

    NAMES = ("received", "inserted", "duplicates", "dead_lettered", "statuses", "batches", "db_errors", "deadlocks")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.NAMES, 0)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._values[name] += delta

    def add_result(self, result: BatchResult) -> None:
        self.add(
            inserted=result.inserted,
            duplicates=result.duplicates,
            dead_lettered=result.dead_lettered,
            statuses=result.statuses,
            batches=1,
        )

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def __getattr__(self, name: str) -> int:
        if name in IngestCounters.NAMES:
            return self.snapshot()[name]
        raise AttributeError(name)


# --------------------------------------------------------------------- MQTT consumer


def subscriptions(settings: Settings) -> list[str]:
    """The topic filters the ingest subscribes to (shared-subscription form when configured)."""
    filters = [contract.subscription("events"), contract.subscription("status")]
    if settings.mqtt_shared_group:
        filters = [f"$share/{settings.mqtt_shared_group}/{f}" for f in filters]
    return filters


CONFLICT_SQLSTATES = ("40P01", "40001")


def _driver_error(exc: BaseException) -> BaseException:
    """The DB-API exception behind ``exc``: SQLAlchemy wraps what it executes, but the store's bulk
    paths (PostgreSQL COPY, SQLite executemany) raise the driver's own exceptions."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def _transient(exc: BaseException) -> bool:
    """A failure of the database, not of the message (unreachable, disk full, locked): retry, never dead-letter."""
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    return isinstance(_driver_error(exc), psycopg.OperationalError | sqlite3.OperationalError)
"""deadlock_detected, serialization_failure: retried at once, logged as what they are."""
SESSION_TAKEN_OVER = 0x8E
"""DISCONNECT reason code: another client connected with this client id."""
FIGHT_CONNECTION_S = 10.0
FIGHT_DROPS = 3
"""This many connections in a row lost within FIGHT_CONNECTION_S of their CONNACK: another client
takes the session over each time we take it back (Mosquitto 2.0 closes the socket without the
DISCONNECT 0x8E, so the reason code alone does not tell)."""
MARKER_ROOT = "palaute/_server/ingest"
"""``MARKER_ROOT/<client id>``: retained while an ingest holds that client id (cleared by its Last
Will), naming the deployment, so a process of another deployment refuses to take it over."""
MARKER_WAIT_S = 1.0


def protocol(settings: Settings) -> MQTTProtocolVersion:
    """``PALAUTE_MQTT_VERSION`` as paho's constant (the ingest and its probe)."""
    return MQTTProtocolVersion.MQTTv5 if settings.mqtt_version == "5" else MQTTProtocolVersion.MQTTv311


def marker_topic(client_id: str) -> str:
    return f"{MARKER_ROOT}/{client_id}"


def client_id_holder(settings: Settings, client_id: str, timeout: float = MARKER_WAIT_S) -> dict | None:
    """The retained marker of ``client_id`` (who holds it), or None; read by a throwaway clean session."""
    import json
    import os

    got: list[bytes] = []
    done = threading.Event()
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{client_id}-probe-{os.getpid()}"[:64],
                        protocol=protocol(settings))
    username, password = settings.mqtt_credentials
    if username is not None:
        probe.username_pw_set(username, password)
    if settings.mqtt_tls:
        probe.tls_set(ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)

    def on_connect(client: mqtt.Client, *_a: Any) -> None:
        client.subscribe(marker_topic(client_id), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            got.append(bytes(message.payload))
        done.set()

    probe.on_connect = on_connect
    probe.on_message = on_message
    try:
        probe.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10)
    except OSError:
        return None  # broker unreachable: the ingest's own connection retries and says so
    probe.loop_start()
    try:
        done.wait(timeout)
    finally:
        probe.disconnect()
        probe.loop_stop()
    if not got:
        return None
    try:
        return json.loads(got[-1])
    except ValueError:
        return {"deployment": "?"}


class Ingestor:
    """The MQTT consumer: a paho network thread that enqueues and a writer thread that commits then acks.

    ``start()`` returns at once (connection happens in the background, with a
    capped backoff); ``stop()`` drains what was received, commits, acks and
    disconnects. Use as a context manager in tests.
    """

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        client_id: str | None = None,
        deployment: str | None = None,
    ) -> None:
        configure_mappers()  # once per process (0.5 s here), not inside the first message's transaction
        self.settings = settings
        self.client_id = client_id or settings.ingest_client_id
        self.deployment = deployment  # set: keep a retained marker naming it while connected
        self._connected_since: float | None = None
        self._short_connections = 0
        self.counters = IngestCounters()
        self.fatal_error: str | None = None
        self._auth_refusal: str | None = None  # the fatal_error a refusal for credentials set (cleared on success)
        self._session_factory = session_factory
        bind = session_factory.kw.get("bind")
        self._dialect: str | None = bind.dialect.name if bind is not None else None  # how the preparer decodes
        self._queue = IngestLanes()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()  # drain the queue, then stop
        self._halt = threading.Event()  # stop now, ack nothing more
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._pending_subs: set[int] = set()
        self._writers: list[threading.Thread] = []
        self._take_lock = threading.Lock()  # the writers take the next batch one at a time
        # The next transaction, decoded by the preparer thread while the writer commits this one.
        self._preparer: threading.Thread | None = None
        self._prepared: queue.Queue[list[InboundMessage]] = queue.Queue(maxsize=1)
        self._prepared_all = threading.Event()  # the preparer has stopped: nothing more will come
        self._staged = 0
        self._deferred: list[InboundMessage] | None = None  # a prepared batch a live press overtook
        # SQLite: a backlog's events decoded in a process of its own (its interpreter lock is not the writer's)
        self.decoder: Decoder | None = Decoder(f"palaute-decoder-{self.client_id}") if self._dialect == "sqlite" else None
        # For /healthz (fleet_server.core.health): is the writer getting anything committed?
        self.started_at = time.monotonic()
        self.last_commit_at: float | None = None
        self.failing_since: float | None = None
        self.last_db_error: str | None = None
        self._in_hand: dict[int, tuple[int, float]] = {}  # per writer thread: (messages, when it took them)
        self._client = self._make_client()

    # ---------------------------------------------------------------- lifecycle

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        if s.mqtt_version == "5":
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol(s))
        else:  # 3.1.1: no clean start or session expiry, the session is clean_session=False (persistent)
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol(s),
                                 clean_session=bool(s.mqtt_shared_group))
        client.manual_ack_set(True)
        username, password = s.mqtt_credentials
        if username is not None:
            client.username_pw_set(username, password)
        if s.mqtt_tls:
            client.tls_set(ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=s.mqtt_reconnect_max_s)
        if self.deployment is not None:
            client.will_set(marker_topic(self.client_id), b"", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def start(self) -> Self:
        s = self.settings
        props = Properties(PacketTypes.CONNECT)
        # A shared-subscription member must not keep a session: Mosquitto goes on routing the group's
        # messages to a disconnected persistent member (its issue 2662), stranding them there.
        persistent = not s.mqtt_shared_group
        props.SessionExpiryInterval = s.mqtt_session_expiry_s if persistent else 0
        # Let the broker keep about two batches in flight: one being committed, one arriving.
        props.ReceiveMaximum = INFLIGHT_MESSAGES
        if self.decoder is not None:
            self.decoder.start()
        self._preparer = threading.Thread(
            target=self._prepare_loop, name=f"ingest-prepare-{self.client_id}", daemon=True
        )
        self._preparer.start()
        self._writers = [threading.Thread(target=self._write_loop, name=f"ingest-writer-{n}-{self.client_id}",
                                          daemon=True) for n in range(self.writer_count)]
        for writer in self._writers:
            writer.start()
        _LOGGER.info("ingest %s connecting to %s:%s (MQTT %s)", self.client_id, s.mqtt_host, s.mqtt_port,
                     s.mqtt_version)
        if s.mqtt_version == "5":
            self._client.connect_async(
                s.mqtt_host, s.mqtt_port, keepalive=s.mqtt_keepalive_s, clean_start=not persistent, properties=props
            )
        else:  # the broker's own limit (Mosquitto max_inflight_messages, RabbitMQ mqtt.prefetch) replaces ReceiveMaximum
            self._client.connect_async(s.mqtt_host, s.mqtt_port, keepalive=s.mqtt_keepalive_s)
        self._client.loop_start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and ack what was received, then disconnect (the session stays on the broker)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for writer in self._writers:
            writer.join(max(0.0, deadline - time.monotonic()))
        if any(w.is_alive() for w in self._writers):
            _LOGGER.warning("ingest writer still busy after %ss; leaving its batch un-acknowledged", timeout)
            self._halt.set()
            for writer in self._writers:
                writer.join(timeout)
        self._halt.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._close_decoder()

    def _close_decoder(self) -> None:
        if self.decoder is not None:
            self.decoder.close()  # after the preparer's request in hand, if any; it declines any later one

    def abort(self) -> None:
        """Stop as if the process died: no more commits or acks, no DISCONNECT packet.

        For tests: what was received but not acknowledged must come back from the broker.
        """
        self._halt.set()
        self._stopping.set()
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()
        for writer in self._writers:
            writer.join(5)
        self._connected.clear()
        self._close_decoder()

    def __enter__(self) -> Self:
        return self if self._writers else self.start()  # ``with Ingestor(...).start()`` starts once

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        """True once connected and both subscriptions are granted."""
        return self._subscribed.wait(timeout)

    @property
    def writer_alive(self) -> bool:
        return bool(self._writers) and all(w.is_alive() for w in self._writers)

    @property
    def writer_count(self) -> int:
        """Transactions in flight at once: ``ingest_writers`` on PostgreSQL, one on SQLite (one writer at a time)."""
        return self.settings.ingest_writers if self._dialect == "postgresql" else 1

    @property
    def writing_since(self) -> float | None:
        """When the longest-busy writer took the batch it is trying to commit (None: none holds one)."""
        return min((since for _, since in list(self._in_hand.values())), default=None)

    @property
    def backlog(self) -> int:
        """Messages received but not yet committed (the writer's current batch included)."""
        deferred = len(self._deferred) if self._deferred is not None else 0
        return self._queue.qsize() + self._staged + deferred + sum(n for n, _ in list(self._in_hand.values()))

    # ---------------------------------------------------------------- paho callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _props: Any) -> None:
        if reason_code.is_failure:
            if reason_code.value in BAD_CREDENTIALS:
                self.fatal_error = self._auth_refusal = f"broker refused the ingest: {reason_code}"
                _LOGGER.error("%s; retrying every %ds (check PALAUTE_MQTT_USERNAME/PASSWORD, or the broker's auth "
                              "hook)", self.fatal_error, AUTH_RETRY_S)
                client.reconnect_delay_set(min_delay=AUTH_RETRY_S, max_delay=AUTH_RETRY_S)
            else:
                _LOGGER.warning("broker refused the connection: %s; retrying", reason_code)
            return
        if self._auth_refusal is not None:  # accepted again: back to the normal backoff
            client.reconnect_delay_set(min_delay=1, max_delay=self.settings.mqtt_reconnect_max_s)
            if self.fatal_error == self._auth_refusal:
                self.fatal_error = None
            self._auth_refusal = None
        with self._ack_lock:
            self._generation += 1
        self._connected.set()
        self._connected_since = time.monotonic()
        _LOGGER.info("ingest %s connected (session present: %s)", self.client_id, flags.session_present)
        if self.deployment is not None:
            import json
            import os
            import socket

            client.publish(marker_topic(self.client_id), json.dumps(
                {"deployment": self.deployment, "host": socket.gethostname(), "pid": os.getpid()}), qos=1, retain=True)
        # Subscribing here renews the subscriptions on every reconnect. retainHandling=1: retained
        # statuses only when the subscription is new, not replayed on every reconnect.
        # MQTT 3.1.1 has no retain handling: the broker replays the retained statuses on every reconnect,
        # which the store ignores (a status older than the one applied changes nothing).
        if self.settings.mqtt_version == "5":
            options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            result, mid = client.subscribe([(f, options) for f in subscriptions(self.settings)])
        else:
            result, mid = client.subscribe([(f, 1) for f in subscriptions(self.settings)])
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subs.add(mid)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, reason_codes: list, _props: Any) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            _LOGGER.error("broker refused the ingest subscriptions: %s", ", ".join(failed))
            return
        self._pending_subs.discard(mid)
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        with self._ack_lock:
            self._generation += 1  # acks for messages of the old connection must not be sent on a new one
        self._connected.clear()
        self._subscribed.clear()
        lived = None if self._connected_since is None else time.monotonic() - self._connected_since
        self._connected_since = None
        if lived is not None:
            self._short_connections = self._short_connections + 1 if lived < FIGHT_CONNECTION_S else 0
        fight = self._short_connections >= FIGHT_DROPS
        if (fight or getattr(reason_code, "value", None) == SESSION_TAKEN_OVER) and not self._stopping.is_set():
            # Someone else connected with our client id. Reconnecting would take the session back and
            # start a fight that neither side wins (each kicks the other every few seconds).
            self.fatal_error = (
                f"MQTT client id {self.client_id!r} was taken over by another connection"
                f"{f' {self._short_connections} times in a row' if fight else ''}: a second server "
                "process or deployment uses the same PALAUTE_MQTT_CLIENT_ID. This process stops ingesting; "
                "give each deployment its own client id (processes of one deployment share it safely: only "
                "the one holding the ingest lock connects)")
            _LOGGER.error("%s", self.fatal_error)
            client.disconnect()
            threading.Thread(target=client.loop_stop, name="ingest-give-up", daemon=True).start()
            return
        if not self._stopping.is_set():
            _LOGGER.warning("ingest disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        payload, received_at = bytes(message.payload), utcnow()
        events = count_events(payload)
        params = None
        if self._decodes_on_arrival(events):
            try:
                params = arrival_params(topic, payload, received_at, self._dialect)
            except Exception:  # a bug here must not stop the network thread: the preparer decodes it again
                _LOGGER.exception("decoding a message on arrival failed; the preparer decodes it")
        self._queue.put(
            InboundMessage(
                topic=topic,
                payload=payload,
                received_at=received_at,
                retained=bool(message.retain),
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
                params=params,
                events=events,
            )
        )
        self.counters.add(received=1)

    def _decodes_on_arrival(self, events: int) -> bool:
        """Whether the network thread decodes a message of ``events`` events (see ARRIVAL_DECODE_MAX_BACKLOG)."""
        if self._queue.bulk_events() > ARRIVAL_DECODE_MAX_BACKLOG:
            return False
        return self.decoder is None or events <= LIVE_MAX_EVENTS

    # ---------------------------------------------------------------- writer thread

    def _take_batch(self) -> list[InboundMessage] | None:
        """The next transaction: live lane first, at most the batch size and TX_MAX_EVENTS events."""
        while not self._halt.is_set():
            batch = self._queue.take(
                self.settings.ingest_batch_size,
                TX_MAX_EVENTS,
                wait_s=POLL_S,
                linger_s=self.settings.ingest_flush_interval_s,
            )
            if batch:
                return batch
            if self._stopping.is_set():
                return None
        return None

    def _prepare_loop(self) -> None:
        """Decode the next transaction while the writer waits for the database with this one."""
        try:
            while (batch := self._take_batch()) is not None:
                try:
                    ready: list[InboundMessage] = PreparedBatch(batch, self._dialect, self.decoder)
                except Exception:  # a bug here must not lose the batch: the writer decodes it
                    _LOGGER.exception("decoding a batch ahead failed; the writer decodes it")
                    ready = batch
                self._staged = len(ready)
                while not self._halt.is_set():
                    try:
                        self._prepared.put(ready, timeout=POLL_S)
                        break
                    except queue.Full:
                        continue
        finally:
            self._prepared_all.set()

    def _next_prepared(self) -> list[InboundMessage] | None:
        """The preparer's next batch; but a live press that came meanwhile goes first."""
        with self._take_lock:
            return self._next_prepared_locked()

    def _next_prepared_locked(self) -> list[InboundMessage] | None:
        if self._deferred is not None:
            batch, self._deferred = self._deferred, None
            return batch
        while not self._halt.is_set():
            try:
                batch = self._prepared.get(timeout=POLL_S)
            except queue.Empty:
                if self._prepared_all.is_set() and self._prepared.empty():
                    return None
                continue
            self._staged = 0
            if self._queue.live_waiting() and not any(IngestLanes.is_live(m) for m in batch):
                live = self._queue.take(self.settings.ingest_batch_size, TX_MAX_EVENTS, wait_s=0, linger_s=0)
                if live:
                    self._deferred = batch
                    return live
            return batch
        return None

    def _write_loop(self) -> None:
        me = threading.get_ident()
        while (batch := self._next_prepared()) is not None:
            self._in_hand[me] = (len(batch), time.monotonic())
            if self._store(batch):
                self._ack(batch)
            del self._in_hand[me]

    def _store(self, batch: list[InboundMessage]) -> bool:
        """Commit the batch, retrying transient database errors; False if told to halt first."""
        delay = RETRY_DELAY_MIN_S
        while not self._halt.is_set():
            try:
                self.counters.add_result(store_batch(self._session_factory, batch))
                self.last_commit_at, self.failing_since = time.monotonic(), None
                return True
            except Exception as exc:  # noqa: BLE001 - a bug or a poison message must not stop ingest
                orig = _driver_error(exc)
                if getattr(orig, "sqlstate", None) in CONFLICT_SQLSTATES:
                    # Another transaction (a second server process, the fleet loop) locked the same rows in
                    # the other order: PostgreSQL rolled this one back. Nothing is wrong; try again at once.
                    self.counters.add(deadlocks=1)
                    _LOGGER.warning("deadlock with another transaction (%s, rolled back by PostgreSQL); retrying "
                                    "%d message(s)", getattr(orig, "sqlstate", "?"), len(batch))
                    self._halt.wait(RETRY_DELAY_MIN_S)
                    continue
                if _transient(exc):
                    self.counters.add(db_errors=1)
                    self.failing_since = self.failing_since or time.monotonic()
                    self.last_db_error = f"{type(orig).__name__}: {str(orig).strip()[:200]}"
                    _LOGGER.error("database unavailable (%s); retrying %d message(s) in %.1fs", exc, len(batch), delay)
                    self._halt.wait(delay)
                    delay = min(delay * 2, self.settings.mqtt_reconnect_max_s)
                    continue
                if not self._isolate(batch, exc):
                    continue
                return True
        return False

    def _isolate(self, batch: list[InboundMessage], exc: Exception) -> bool:
        """A non-transient failure: store messages one by one, dead-lettering any that still fail.

        Returns False when even that failed (the caller then retries the batch).
        """
        self.counters.add(db_errors=1)
        _LOGGER.exception("storing a batch of %d failed (%s); isolating the bad message", len(batch), exc)
        try:
            for message in batch:
                try:
                    self.counters.add_result(store_batch(self._session_factory, [message]))
                except Exception as single:
                    if _transient(single):
                        raise  # the database failed, not this message: retry the batch
                    store_dead_letter(
                        self._session_factory, message, REASON_INGEST_ERROR, f"{type(single).__name__}: {single}"
                    )
                    self.counters.add(dead_lettered=1)
            return True
        except Exception:
            _LOGGER.exception("could not isolate the failing message; retrying the batch")
            self._halt.wait(RETRY_DELAY_MIN_S)
            return False

    def _ack(self, batch: Iterable[InboundMessage]) -> None:
        with self._ack_lock:
            for message in batch:
                if message.qos > 0 and message.generation == self._generation and not self._halt.is_set():
                    self._client.ack(message.mid, message.qos)
