"""The MQTT consumer: kiosk messages in, database rows out, nothing lost or counted twice.

Delivery contract (see ../DESIGN "Delivery guarantees"):
- The ingest keeps a persistent MQTT v5 session (fixed client id, clean start
  off, a session expiry), subscribes with QoS 1, so the broker queues for it
  while it is away.
- Acknowledgement is manual: the broker gets the PUBACK for a message only
  after the transaction holding its rows has committed. A crash before the
  commit means no PUBACK, so the broker delivers the message again.
- Redelivery is harmless: events are inserted with ON CONFLICT (event_id) DO
  NOTHING, so a repeated event never counts twice.
- Nothing invalid is dropped: a message that breaks the contract is stored in
  ``dead_letters`` with its reason and raw payload, and the rest of the batch
  goes on. A database error leaves the whole batch un-acknowledged and is
  retried with a capped backoff.

``handle_batch`` is the core and needs no MQTT, so tests and bench/ can call it
directly; ``Ingestor`` wraps it with the paho-mqtt client and a writer thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.core.clock import utcnow
from fleet_server.core.settings import Settings
from fleet_server.models import (
    MAX_STORED_PAYLOAD,
    DeadLetter,
    Device,
    DevicePresence,
    FeedbackEvent,
    Station,
)
from fleet_server.results import rollups
from palaute_wire import contract

_LOGGER = logging.getLogger(__name__)

# Reason codes the ingest adds to contract.ContractError's (bad_topic, oversize, bad_json,
# unsupported_version, schema, topic_mismatch).
REASON_UNEXPECTED_CHANNEL = "unexpected_channel"  # e.g. a config message on a topic we read
REASON_DEVICE_STATION_MISMATCH = "device_station_mismatch"  # device known under another station
REASON_DEVICE_RETIRED = "device_retired"  # the registry retired this device
REASON_INGEST_ERROR = "ingest_error"  # valid, but storing it failed for a non-transient reason

MAX_DETAIL_CHARS = 2000
"""Dead-letter detail texts are cut here; the payload itself is kept."""

RETRY_DELAY_MIN_S = 0.1
"""First wait after a failed commit; doubles up to the reconnect cap."""

POLL_S = 0.2
"""How often an idle writer thread checks whether it should stop."""

STATUS_FIELDS = (
    "software_version",
    "uptime_s",
    "queue_depth",
    "oldest_queued_age_s",
    "shed_count",
    "last_seq",
    "clock_synced",
    "config_version",
    "cpu_temp_c",
    "disk_free_mb",
    "ip",
)
"""Status fields copied to the device row when present (the Last Will carries none)."""

BAD_CREDENTIALS = (0x86, 0x87)
"""CONNACK reason codes (bad user name or password, not authorised) that stop reconnecting."""


@dataclass(frozen=True)
class InboundMessage:
    """One MQTT message as the ingest saw it; ``mid``/``qos``/``generation`` are for acking."""

    topic: str
    payload: bytes
    received_at: datetime = field(default_factory=utcnow)
    retained: bool = False
    mid: int = 0
    qos: int = 0
    generation: int = 0


@dataclass
class BatchResult:
    """What ``handle_batch`` did with one batch of messages."""

    messages: int = 0
    events: int = 0
    inserted: int = 0
    duplicates: int = 0
    statuses: int = 0
    dead_lettered: int = 0

    def __iadd__(self, other: BatchResult) -> BatchResult:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


# --------------------------------------------------------------------- core


def _dialect_insert(session: Session, table: Any) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r} (use sqlite or postgresql)")


def _dead_letter_row(message: InboundMessage, reason: str, detail: str) -> dict[str, Any]:
    return {
        "received_at": message.received_at,
        "topic": message.topic,
        "reason": reason,
        "detail": detail[:MAX_DETAIL_CHARS],
        "payload": bytes(message.payload[:MAX_STORED_PAYLOAD]),
        "size": len(message.payload),
    }


def _event_row(event: contract.FeedbackEvent, received_at: datetime) -> dict[str, Any]:
    smiley = event.kind == "smiley"
    return {
        "event_id": event.event_id,
        "station_id": event.station_id,
        "device_id": event.device_id,
        "kind": event.kind,
        "value": event.value if smiley else None,
        "option_id": None if smiley else event.value,
        "question_id": event.question_id,
        "lang": event.lang,
        "ts": event.ts,
        "received_at": received_at,
        "seq": event.seq,
        "clock_synced": event.clock_synced,
        "survey_version": event.survey_version,
        "answer_to": event.answer_to,
        "burst": "burst" in event.flags,
        "out_of_hours": "out_of_hours" in event.flags,
    }


def _register(session: Session, senders: dict[str, str], now: datetime) -> dict[str, tuple[str, str]]:
    """Create stations and devices seen for the first time; return {device: (station, state)}.

    Until the device registry exists, the first valid message registers its
    sender; ON CONFLICT DO NOTHING keeps concurrent ingest workers from colliding.
    """
    known = {
        row.id: (row.station_id, row.state)
        for row in session.execute(
            select(Device.id, Device.station_id, Device.state).where(Device.id.in_(list(senders)))
        )
    }
    first_words = [d for d, (_s, state) in known.items() if state == "provisioned"]
    if first_words:  # a provisioned kiosk that speaks is in service from this message on
        session.execute(
            update(Device).where(Device.id.in_(first_words), Device.state == "provisioned").values(state="active")
        )
        known.update({d: (known[d][0], "active") for d in first_words})
    new = {device: station for device, station in senders.items() if device not in known}
    if new:
        stations = sorted(set(new.values()))
        session.execute(
            _dialect_insert(session, Station.__table__).on_conflict_do_nothing(index_elements=["id"]),
            [{"id": s, "name": s, "created_at": now} for s in stations],
        )
        session.execute(
            _dialect_insert(session, Device.__table__).on_conflict_do_nothing(index_elements=["id"]),
            [
                {"id": d, "station_id": s, "state": "active", "online": False, "created_at": now}
                for d, s in sorted(new.items())
            ],
        )
        _LOGGER.info("registered %d new device(s): %s", len(new), ", ".join(sorted(new)))
        known.update({d: (s, "active") for d, s in new.items()})
    return known


def _apply_status(session: Session, message: InboundMessage, status: contract.StatusHeartbeat) -> None:
    device = session.get(Device, status.device_id)
    assert device is not None  # registered just before
    was_online = device.online
    device.online = status.online
    device.status_sent_at = status.sent_at
    device.status_received_at = message.received_at
    device.last_status = status.model_dump(mode="json", exclude_none=True)
    for name in STATUS_FIELDS:
        value = getattr(status, name)
        if value is not None:
            setattr(device, name, value)
    if status.online:
        # A retained status replayed at subscribe time may be old: count it as seen when it was sent.
        seen = min(status.sent_at, message.received_at) if message.retained else message.received_at
        if device.last_seen_at is None or seen > device.last_seen_at:
            device.last_seen_at = seen
    if was_online != status.online:
        session.add(DevicePresence(device_id=device.id, at=message.received_at, online=status.online))


def _insert_events_statement(session: Session, rows: list[dict[str, Any]]) -> Any:
    """INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id, for this session's database.

    Execute it with ``rows`` as parameters; it returns the ids really inserted. On
    PostgreSQL the rows travel as one array per column through ``unnest``: one short
    statement instead of a thousand-row VALUES list, which psycopg would otherwise
    re-parse on every batch (measured: about 10x faster per event).
    """
    table = FeedbackEvent.__table__
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return (
            _dialect_insert(session, table)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(table.c.event_id)
        )
    columns = list(rows[0])
    arrays = ", ".join(f"CAST(:{c} AS {table.c[c].type.compile(dialect)}[])" for c in columns)
    return text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    ).columns(table.c.event_id)


def _execute_insert(session: Session, stmt: Any, rows: list[dict[str, Any]]) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(stmt, {c: [r[c] for r in rows] for c in rows[0]})
    return session.execute(stmt, rows)


def handle_batch(session: Session, messages: Sequence[InboundMessage]) -> BatchResult:
    """Store one batch of MQTT messages in ``session``; the caller commits (then acks).

    Every message ends up as event rows, a device status update, or a dead
    letter; only a database error escapes, and then nothing of the batch may be
    acknowledged. Statuses are applied in arrival order.
    """
    result = BatchResult(messages=len(messages))
    dead: list[dict[str, Any]] = []
    decoded: list[tuple[InboundMessage, contract.EventBatch | contract.StatusHeartbeat]] = []
    for message in messages:
        try:
            channel = contract.parse_topic(message.topic).channel
            if channel not in ("events", "status"):
                dead.append(
                    _dead_letter_row(message, REASON_UNEXPECTED_CHANNEL, f"the ingest reads events and status, not {channel}")
                )
                continue
            _, payload = contract.decode(message.topic, message.payload)
        except contract.ContractError as exc:
            dead.append(_dead_letter_row(message, exc.reason, exc.detail))
            continue
        assert isinstance(payload, (contract.EventBatch, contract.StatusHeartbeat))
        decoded.append((message, payload))

    now = utcnow()
    senders: dict[str, str] = {}
    for _, payload in decoded:
        senders.setdefault(payload.device_id, payload.station_id)
    known = _register(session, senders, now) if senders else {}

    event_rows: dict[uuid.UUID, dict[str, Any]] = {}
    last_event_at: dict[str, datetime] = {}
    statuses: list[tuple[InboundMessage, contract.StatusHeartbeat]] = []
    for message, payload in decoded:
        station_id, state = known[payload.device_id]
        if station_id != payload.station_id:
            dead.append(
                _dead_letter_row(
                    message,
                    REASON_DEVICE_STATION_MISMATCH,
                    f"device {payload.device_id} belongs to station {station_id}, not {payload.station_id}",
                )
            )
            continue
        if state == "retired":
            dead.append(_dead_letter_row(message, REASON_DEVICE_RETIRED, f"device {payload.device_id} is retired"))
            continue
        if isinstance(payload, contract.StatusHeartbeat):
            statuses.append((message, payload))
            continue
        result.events += len(payload.events)
        for event in payload.events:
            event_rows.setdefault(event.event_id, _event_row(event, message.received_at))
        previous = last_event_at.get(payload.device_id)
        if previous is None or message.received_at > previous:
            last_event_at[payload.device_id] = message.received_at

    if event_rows:
        stmt = _insert_events_statement(session, list(event_rows.values()))
        inserted = _execute_insert(session, stmt, list(event_rows.values())).scalars().all()
        result.inserted = len(inserted)
        # Only the rows really inserted reach the rollups: a redelivery adds nothing.
        rollups.add_events(session, [event_rows[event_id] for event_id in inserted])
        result.duplicates = result.events - result.inserted
        table = Device.__table__
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(last_event_at=bindparam("b_at"), last_seen_at=bindparam("b_at")),
            [{"b_id": d, "b_at": at} for d, at in last_event_at.items()],
        )
    for message, status in statuses:
        _apply_status(session, message, status)
        result.statuses += 1
    if dead:
        session.execute(insert(DeadLetter.__table__), dead)
        result.dead_lettered = len(dead)
        for row in dead:
            _LOGGER.warning("dead letter from %s: %s: %s", row["topic"], row["reason"], row["detail"])
    session.flush()
    return result


def store_batch(session_factory: sessionmaker[Session], messages: Sequence[InboundMessage]) -> BatchResult:
    """``handle_batch`` in its own transaction, committed before returning."""
    with session_factory() as session:
        result = handle_batch(session, messages)
        session.commit()
    return result


# --------------------------------------------------------------------- counters


class IngestCounters:
    """Running totals for the demo, /healthz and bench/; safe to read from any thread."""

    NAMES = ("received", "inserted", "duplicates", "dead_lettered", "statuses", "batches", "db_errors")

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
    ) -> None:
        self.settings = settings
        self.client_id = client_id or settings.mqtt_client_id
        self.counters = IngestCounters()
        self.fatal_error: str | None = None
        self._session_factory = session_factory
        self._queue: queue.Queue[InboundMessage] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()  # drain the queue, then stop
        self._halt = threading.Event()  # stop now, ack nothing more
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._pending_subs: set[int] = set()
        self._writer: threading.Thread | None = None
        self._client = self._make_client()

    # ---------------------------------------------------------------- lifecycle

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.manual_ack_set(True)
        username, password = s.mqtt_credentials
        if username is not None:
            client.username_pw_set(username, password)
        if s.mqtt_tls:
            client.tls_set(ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=s.mqtt_reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def start(self) -> Ingestor:
        s = self.settings
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.mqtt_session_expiry_s
        # Let the broker keep about two batches in flight: one being committed, one arriving.
        props.ReceiveMaximum = min(65535, max(20, 2 * s.ingest_batch_size))
        self._writer = threading.Thread(target=self._write_loop, name=f"ingest-writer-{self.client_id}", daemon=True)
        self._writer.start()
        _LOGGER.info("ingest %s connecting to %s:%s", self.client_id, s.mqtt_host, s.mqtt_port)
        self._client.connect_async(
            s.mqtt_host, s.mqtt_port, keepalive=s.mqtt_keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and ack what was received, then disconnect (the session stays on the broker)."""
        self._stopping.set()
        if self._writer is not None:
            self._writer.join(timeout)
            if self._writer.is_alive():
                _LOGGER.warning("ingest writer still busy after %ss; leaving its batch un-acknowledged", timeout)
                self._halt.set()
                self._writer.join(timeout)
        self._halt.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

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
        if self._writer is not None:
            self._writer.join(5)
        self._connected.clear()

    def __enter__(self) -> Ingestor:
        return self.start()

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
    def backlog(self) -> int:
        """Messages received but not yet committed."""
        return self._queue.qsize()

    # ---------------------------------------------------------------- paho callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _props: Any) -> None:
        if reason_code.is_failure:
            if reason_code.value in BAD_CREDENTIALS:
                self.fatal_error = f"broker refused the ingest: {reason_code}"
                _LOGGER.error("%s; not reconnecting (check PALAUTE_MQTT_USERNAME/PASSWORD)", self.fatal_error)
                client.disconnect()
            else:
                _LOGGER.warning("broker refused the connection: %s; retrying", reason_code)
            return
        with self._ack_lock:
            self._generation += 1
        self._connected.set()
        _LOGGER.info("ingest %s connected (session present: %s)", self.client_id, flags.session_present)
        # Subscribing here renews the subscriptions on every reconnect. retainHandling=1: retained
        # statuses only when the subscription is new, not replayed on every reconnect.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        result, mid = client.subscribe([(f, options) for f in subscriptions(self.settings)])
        if result == mqtt.MQTT_ERR_SUCCESS:
            self._pending_subs.add(mid)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, reason_codes: list, _props: Any) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            _LOGGER.error("broker refused the ingest subscriptions: %s", ", ".join(failed))
            return
        self._pending_subs.discard(mid)
        self._subscribed.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        with self._ack_lock:
            self._generation += 1  # acks for messages of the old connection must not be sent on a new one
        self._connected.clear()
        self._subscribed.clear()
        if not self._stopping.is_set():
            _LOGGER.warning("ingest disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        self._queue.put(
            InboundMessage(
                topic=topic,
                payload=message.payload,
                retained=bool(message.retain),
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
            )
        )
        self.counters.add(received=1)

    # ---------------------------------------------------------------- writer thread

    def _take_batch(self) -> list[InboundMessage] | None:
        """Wait for a first message, then gather more up to the batch size or the flush interval."""
        while True:
            if self._halt.is_set():
                return None
            try:
                first = self._queue.get(timeout=POLL_S)
                break
            except queue.Empty:
                if self._stopping.is_set():
                    return None
        batch = [first]
        deadline = time.monotonic() + self.settings.ingest_flush_interval_s
        while len(batch) < self.settings.ingest_batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while (batch := self._take_batch()) is not None:
            if self._store(batch):
                self._ack(batch)

    def _store(self, batch: list[InboundMessage]) -> bool:
        """Commit the batch, retrying transient database errors; False if told to halt first."""
        delay = RETRY_DELAY_MIN_S
        while not self._halt.is_set():
            try:
                self.counters.add_result(store_batch(self._session_factory, batch))
                return True
            except (OperationalError, DBAPIError) as exc:
                if isinstance(exc, OperationalError) or exc.connection_invalidated:
                    self.counters.add(db_errors=1)
                    _LOGGER.error("database unavailable (%s); retrying %d message(s) in %.1fs", exc, len(batch), delay)
                    self._halt.wait(delay)
                    delay = min(delay * 2, self.settings.mqtt_reconnect_max_s)
                    continue
                if not self._isolate(batch, exc):
                    continue
                return True
            except Exception as exc:  # noqa: BLE001 - a bug or a poison message must not stop ingest
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
                except OperationalError:
                    raise
                except Exception as single:  # noqa: BLE001
                    row = _dead_letter_row(message, REASON_INGEST_ERROR, f"{type(single).__name__}: {single}")
                    with self._session_factory() as session:
                        session.execute(insert(DeadLetter.__table__), [row])
                        session.commit()
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
