"""The database side of the ingest: validate -> insert events -> rollups -> statuses -> dead letters.

Everything here works on a SQLAlchemy session and knows nothing of MQTT, so the
consumer (``consumer.py``), tests and bench/ call it the same way. The caller
commits; only then may it acknowledge the messages (PUBACK after COMMIT).

- Each event is stored once by its ``event_id`` (ON CONFLICT DO NOTHING); a
  redelivery adds nothing, to the events or to the rollups.
- Nothing invalid is dropped: a message that breaks the contract is stored in
  ``dead_letters`` with its reason and raw payload, and the rest of the batch
  goes on. Only a database error escapes, and then nothing of the batch may be
  acknowledged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Self

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.core.clock import utcnow
from fleet_server.ingest.seq_jumps import REASON_SEQ_JUMP, seq_ceilings, split_jumps
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

    def __iadd__(self, other: BatchResult) -> Self:
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
                    _dead_letter_row(
                        message, REASON_UNEXPECTED_CHANNEL, f"the ingest reads events and status, not {channel}"
                    )
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

    ceilings = seq_ceilings(session, [p for _, p in decoded])
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
        events, jumped = split_jumps(payload, ceilings)
        if jumped:
            dead.append(_dead_letter_row(message, REASON_SEQ_JUMP, jumped))
            result.events -= len(payload.events) - len(events)
        for event in events:
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


def store_dead_letter(
    session_factory: sessionmaker[Session], message: InboundMessage, reason: str, detail: str
) -> None:
    """Dead-letter one message in its own transaction (a message that could not be stored otherwise)."""
    with session_factory() as session:
        session.execute(insert(DeadLetter.__table__), [_dead_letter_row(message, reason, detail)])
        session.commit()
