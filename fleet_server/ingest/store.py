"""The database side of the ingest: validate -> insert events -> rollups -> statuses -> dead letters.

Everything here works on a SQLAlchemy session and knows nothing of MQTT, so the
consumer (``consumer.py``), tests and bench/ call it the same way. The caller
commits; only then may it acknowledge the messages (PUBACK after COMMIT).

- Each event is stored once by its ``event_id``; a redelivery adds nothing, to
  the events or to the rollups. A second copy of an id with different content
  is not dropped silently: it is dead-lettered as ``conflicting_duplicate`` with
  both copies.
- Nothing invalid is dropped: a message that breaks the contract is stored in
  ``dead_letters`` with its reason and raw payload, and the rest of the batch
  goes on. The same refused message seen again (paho resends its in-flight
  window on every reconnect) counts up its row instead of adding one.
  Only a database error escapes, and then nothing of the batch may be
  acknowledged.

Speed (bench/bench_ingest.py): events go in with the database's own bulk path,
not per-row SQLAlchemy binds. Kiosk batches are validated straight into the
INSERT's parameters as they arrive, in the consumer's network thread (``arrival_params``,
``sqlite_events.decode``: no model or row dict per event; during a burst that piles up in the
lanes, by the preparer instead, ``consumer.ARRIVAL_DECODE_MAX_BACKLOG``). PostgreSQL
(``pg_writer``): that decoding also writes each event
as a line of COPY text, the writer COPYs the lines into a temp table (made once per
connection), then one statement inserts them ``ON CONFLICT (event_id) DO NOTHING``,
rolls the inserted rows up in SQL, moves the senders' event times and answers with the
ids it did not insert (none, but for redeliveries); SQLite: under the write lock one
``executemany`` ... ON CONFLICT DO NOTHING, the ids stored before looked up only when
fewer rows went in. The senders, their state and their seq
ceilings are one query; statuses are one UPDATE per batch, not a SELECT and an
UPDATE each. Under a loaded machine every round trip costs a wake-up, so a
transaction makes as few as it can.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, Self

from sqlalchemy import Connection, Engine, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.core.clock import utcnow
from fleet_server.ingest import decoder as decoding
from fleet_server.ingest import pg_writer, sqlite_events
from fleet_server.ingest.seq_jumps import (
    REASON_SEQ_JUMP,
    below_jump,
    seq_ceilings,
    split_jumps,
    stored_max_seq,
)
from fleet_server.models import (
    MAX_STORED_PAYLOAD,
    DeadLetter,
    Device,
    DevicePresence,
    FeedbackEvent,
    Station,
)
from fleet_server.models.base import UtcDateTime
from fleet_server.results import rollups
from palaute_wire import contract
from palaute_wire.errors import ContractError

_LOGGER = logging.getLogger(__name__)

# Reason codes the ingest adds to contract.ContractError's (bad_topic, oversize, bad_json,
# unsupported_version, schema, topic_mismatch).
REASON_UNEXPECTED_CHANNEL = "unexpected_channel"  # e.g. a config message on a topic we read
REASON_DEVICE_STATION_MISMATCH = "device_station_mismatch"  # device known under another station
REASON_DEVICE_RETIRED = "device_retired"  # the registry retired this device
REASON_INGEST_ERROR = "ingest_error"  # valid, but storing it failed for a non-transient reason
REASON_CONFLICTING_DUPLICATE = "conflicting_duplicate"  # an event id already stored with other content

MAX_DETAIL_CHARS = 2000
"""Dead-letter detail texts are cut here; the payload itself is kept."""

TX_MAX_EVENTS = 2000
"""Most events the consumer commits in one transaction: a commit stays short (about 0.1 s
on a busy 2-core machine), so a live press never waits behind one long catch-up transaction;
larger ones gained little throughput (each is one COPY and one INSERT..SELECT anyway)."""

SQLITE_MAX_PARAMS = 500
"""Ids per ``IN (...)`` lookup on SQLite (old builds allow 999 parameters)."""

STATUS_FIELDS = (
    "software_version",
    "uptime_s",
    "queue_depth",
    "oldest_queued_age_s",
    "shed_count",
    "last_seq",
    "held_from_seq",
    "epoch",
    "clock_synced",
    "config_version",
    "cpu_temp_c",
    "disk_free_mb",
    "ip",
)
"""Status fields copied to the device row when present (the Last Will carries none)."""

CONTENT_COLUMNS = (
    "station_id", "device_id", "kind", "value", "option_id", "question_id", "lang", "ts", "seq",
    "clock_synced", "survey_version", "answer_to", "burst", "out_of_hours", "channel",
)  # fmt: skip
"""The columns two copies of one event id must agree on (received_at is the server's, not the event's)."""


def count_events(payload: bytes) -> int:
    """How many events a message carries, without parsing it (for bounding transactions)."""
    return payload.count(b'"event_id"')


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
    params: sqlite_events.EventParams | None = field(default=None, compare=False, repr=False)
    """Made on arrival (``arrival_params``), so ``prepare`` need not; None: ``prepare`` decodes it."""
    events: int = field(default=-1, compare=False, repr=False)
    """``count_events(payload)``, counted once (the lanes and ``prepare`` each needed it); given by a
    caller that counted them already (the consumer's network thread), else counted here."""

    def __post_init__(self) -> None:
        if self.events < 0:
            object.__setattr__(self, "events", count_events(self.payload))


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


# --------------------------------------------------------------------- rows


def _dialect_insert(conn: Session | Connection, table: Any) -> Any:
    name = (conn.dialect if isinstance(conn, Connection) else conn.get_bind().dialect).name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r} (use sqlite or postgresql)")


def _dead_letter_row(
    message: InboundMessage, reason: str, detail: str, *, payload: bytes | None = None, stored: bytes | None = None
) -> dict[str, Any]:
    raw = message.payload if payload is None else payload
    return {
        "received_at": message.received_at,
        "last_seen_at": message.received_at,
        "topic": message.topic,
        "reason": reason,
        "detail": detail[:MAX_DETAIL_CHARS],
        "payload": bytes(raw[:MAX_STORED_PAYLOAD]),
        "size": len(raw),
        "digest": hashlib.sha256(b"\0".join((reason.encode(), message.topic.encode(), bytes(raw)))).hexdigest(),
        "count": 1,
        "stored_payload": stored,
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
        "epoch": event.epoch,
        "boot_id": event.boot_id,
        "mono_s": event.mono_s,
        "ts_offset_s": event.ts_offset_s,
        "channel": event.channel,
    }


def _content_json(row: Any) -> bytes:
    return json.dumps({c: row[c] for c in CONTENT_COLUMNS}, default=str, sort_keys=True).encode()


def _differences(stored: Any, new: Any) -> list[str]:
    return [c for c in CONTENT_COLUMNS if stored[c] != new[c]]


# --------------------------------------------------------------------- devices


@dataclass
class _Known:
    station_id: str
    state: str
    online: bool
    status_order: tuple | None = None  # status_order() of the status last applied
    status_received_at: datetime | None = None
    stored_seq: int | None = None  # the highest of its stored last_seq and its highest stored event seq


STATUS_REORDER_WINDOW = timedelta(minutes=5)
"""An older status is ignored only this soon after the newer one arrived: reordering between
connections takes seconds, and a kiosk whose clock was set back must not be ignored for good."""


def status_order(connected_at: datetime | None, online: bool, sent_at: datetime) -> tuple:
    """The kiosk's own order of its statuses: by connection, within one connection an offline
    (the Last Will, or the goodbye at shutdown) after every online, then by ``sent_at``. A Last
    Will's ``sent_at`` is its connection's start, so it is older than that connection's heartbeats
    and must not be compared by ``sent_at`` alone. Kiosks that send no ``connected_at``: None
    (applied in arrival order, as before)."""
    if connected_at is None:
        return ()
    return (connected_at, not online, sent_at)


_KNOWN_DEVICES = select(
    Device.id, Device.station_id, Device.state, Device.online, Device.status_connected_at, Device.status_sent_at,
    Device.status_received_at, Device.last_seq, stored_max_seq().label("max_seq"),
).where(Device.id.in_(bindparam("ids", expanding=True)))
"""What a batch needs of its senders, seq ceilings included, in one query."""


def _applied_order(row: Any) -> tuple | None:
    """``status_order`` of the status a device row last applied (None: none yet)."""
    if row.status_sent_at is None:
        return None
    return status_order(row.status_connected_at, bool(row.online), row.status_sent_at)


def _register(session: Session, senders: dict[str, str], now: datetime) -> dict[str, _Known]:
    """Create stations and devices seen for the first time; return what the batch needs of each.

    Until the device registry exists, the first valid message registers its
    sender; ON CONFLICT DO NOTHING keeps concurrent ingest workers from colliding.
    """
    known = {
        row.id: _Known(row.station_id, row.state, bool(row.online), _applied_order(row), row.status_received_at,
                       max((s for s in (row.last_seq, row.max_seq) if s is not None), default=None))
        for row in (pg_writer.known_devices(session, list(senders)) if _is_postgresql(session)
                    else session.execute(_KNOWN_DEVICES, {"ids": list(senders)}))
    }
    first_words = [d for d, k in known.items() if k.state == "provisioned"]
    if first_words:  # a provisioned kiosk that speaks is in service from this message on
        session.execute(
            update(Device).where(Device.id.in_(first_words), Device.state == "provisioned").values(state="active")
        )
        for d in first_words:
            known[d].state = "active"
    new = {device: station for device, station in senders.items() if device not in known}
    if new:
        bind = session.get_bind()
        if _is_postgresql(session) and isinstance(bind, Engine):
            # In a short transaction of its own: another writer's transaction with the same new sender
            # then waits for this commit (milliseconds), not for the whole of this one (thousands of
            # events). A sender registered so stays registered if this transaction fails: it did
            # send a valid message.
            with bind.connect() as conn:
                _insert_senders(conn, new, now)
                conn.commit()
        else:  # SQLite: one writer at a time; a second connection would fight this one for the lock
            _insert_senders(session, new, now)
        _LOGGER.info("registered %d new device(s): %s", len(new), ", ".join(sorted(new)))
        known.update({d: _Known(s, "active", False) for d, s in new.items()})
    return known


def _insert_senders(conn: Session | Connection, new: dict[str, str], now: datetime) -> None:
    """Create the stations and devices of senders seen for the first time (ON CONFLICT DO NOTHING:
    concurrent writers may meet here)."""
    conn.execute(
        _dialect_insert(conn, Station.__table__).on_conflict_do_nothing(index_elements=["id"]),
        [{"id": s, "name": s, "created_at": now} for s in sorted(set(new.values()))],
    )
    conn.execute(
        _dialect_insert(conn, Device.__table__).on_conflict_do_nothing(index_elements=["id"]),
        [{"id": d, "station_id": s, "state": "active", "online": False, "created_at": now}
         for d, s in sorted(new.items())],
    )


def _forward(column: Any, at: Any) -> Any:
    """``column`` moved to ``at``, never back (and kept where ``at`` is NULL): an older retained
    status, or a transaction that commits after a later one (a live press overtakes a backlog; on
    PostgreSQL two writers), must not move a time back."""
    return case((and_(at.is_not(None), or_(column.is_(None), column < at)), at), else_=column)


def _status_update_statement() -> Any:
    """One UPDATE for every status of a batch: fields a status leaves out keep their value."""
    t = Device.__table__
    seen = bindparam("b_seen", type_=t.c.last_seen_at.type)
    values: dict[str, Any] = {
        "online": bindparam("b_online", type_=t.c.online.type),
        "status_sent_at": bindparam("b_sent_at", type_=t.c.status_sent_at.type),
        "status_connected_at": bindparam("b_connected_at", type_=t.c.status_connected_at.type),
        "status_received_at": bindparam("b_received_at", type_=t.c.status_received_at.type),
        "last_status": bindparam("b_last_status", type_=t.c.last_status.type),
        "last_seen_at": _forward(t.c.last_seen_at, seen),
    }
    for name in STATUS_FIELDS:
        values[name] = func.coalesce(bindparam(f"b_{name}", type_=t.c[name].type), t.c[name])
    return update(t).where(t.c.id == bindparam("b_id")).values(**values)


_STATUS_UPDATE = _status_update_statement()


def _apply_statuses(
    session: Session, statuses: list[tuple[InboundMessage, contract.StatusHeartbeat]], known: dict[str, _Known]
) -> None:
    """Fold the batch's statuses per device in the kiosk's own order (``status_order``), skipping
    any older than the one already applied, then write them set-based. On PostgreSQL the senders'
    rows are locked and their last status read again first (``pg_writer.locked_statuses``)."""
    if _is_postgresql(session):
        for row in pg_writer.locked_statuses(session, list({status.device_id for _, status in statuses})):
            device = known[row.id]
            device.online, device.status_order = bool(row.online), _applied_order(row)
            device.status_received_at = row.status_received_at
    params: dict[str, dict[str, Any]] = {}
    presence: list[dict[str, Any]] = []
    ordered = sorted(enumerate(statuses), key=lambda item: (
        item[1][1].device_id, status_order(item[1][1].connected_at, item[1][1].online, item[1][1].sent_at),
        item[0]))  # stable: statuses without connected_at keep their arrival order
    for _, (message, status) in ordered:
        device = known[status.device_id]
        order = status_order(status.connected_at, status.online, status.sent_at)
        if (order and device.status_order and order <= device.status_order
                and device.status_received_at is not None
                and message.received_at - device.status_received_at < STATUS_REORDER_WINDOW):
            _LOGGER.info("status of %s sent %s is older than the one applied; ignored", status.device_id,
                         status.sent_at.isoformat())
            continue
        device.status_order, device.status_received_at = order or None, message.received_at
        p = params.get(status.device_id)
        if p is None:
            p = params[status.device_id] = {"b_id": status.device_id, "b_seen": None}
            p.update({f"b_{name}": None for name in STATUS_FIELDS})
        p["b_online"] = status.online
        p["b_sent_at"] = status.sent_at
        p["b_connected_at"] = status.connected_at
        p["b_received_at"] = message.received_at
        p["b_status"] = status
        for name in STATUS_FIELDS:
            value = getattr(status, name)
            if value is not None:
                p[f"b_{name}"] = value
        if status.online:
            # A retained status replayed at subscribe time may be old: count it as seen when it was sent.
            seen = min(status.sent_at, message.received_at) if message.retained else message.received_at
            if p["b_seen"] is None or seen > p["b_seen"]:
                p["b_seen"] = seen
        if device.online != status.online:
            presence.append({"device_id": status.device_id, "at": message.received_at, "online": status.online})
            device.online = status.online
    for p in params.values():
        p["b_last_status"] = p.pop("b_status").model_dump(mode="json", exclude_none=True)
    if params:
        session.execute(_STATUS_UPDATE, list(params.values()))
    if presence:
        session.execute(DevicePresence.__table__.insert(), presence)


# --------------------------------------------------------------------- events, per database


def _sqlite_kinds(columns: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indexes of the uuid and of the time columns: what SQLAlchemy would convert on SQLite."""
    table = FeedbackEvent.__table__
    uuids = [i for i, c in enumerate(columns) if table.c[c].type.python_type is uuid.UUID]
    times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UtcDateTime)]
    return uuids, times


def _insert_events_sqlite(session: Session, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Under the write lock: look up the ids already stored, then executemany the new rows;
    returns the ids already stored (not inserted)."""
    columns = list(rows[0])
    raw = session.connection().connection.driver_connection
    assert raw is not None
    if not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")  # the lookup and the insert see the same database
    table = FeedbackEvent.__tablename__
    hexes = [row["event_id"].hex for row in rows]
    stored: set[str] = set()
    for i in range(0, len(hexes), SQLITE_MAX_PARAMS):
        chunk = hexes[i : i + SQLITE_MAX_PARAMS]
        marks = ", ".join("?" * len(chunk))
        stored.update(r[0] for r in raw.execute(f"SELECT event_id FROM {table} WHERE event_id IN ({marks})", chunk))
    uuids, times = _sqlite_kinds(columns)
    getter = itemgetter(*columns)
    texts: dict[datetime, str] = {}  # a message's rows share received_at
    values = []
    skipped: set[uuid.UUID] = set()
    for row, hexed in zip(rows, hexes, strict=True):
        if hexed in stored:
            skipped.add(row["event_id"])
            continue
        v = list(getter(row))
        for i in uuids:
            if v[i] is not None:
                v[i] = v[i].hex
        for i in times:
            t = v[i]
            if t is not None:
                text_ = texts.get(t)
                if text_ is None:
                    text_ = texts[t] = sqlite_events.time_text(t)
                v[i] = text_
        values.append(v)
    if values:
        raw.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values
        )
    return skipped


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _insert_and_roll_up(session: Session, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert the rows whose event_id is new and add those to the rollups; return the ids that were
    stored already (not inserted). ``rows`` have distinct event ids; the usual answer is the empty
    set, so the caller needs no set of every inserted id. PostgreSQL does it in one statement
    (``pg_writer``)."""
    session.flush()
    if _is_postgresql(session):
        return pg_writer.insert_events(session, rows)
    skipped = _insert_events_sqlite(session, rows)
    # Only the rows really inserted reach the rollups: a redelivery adds nothing.
    rollups.add_events(session, [r for r in rows if r["event_id"] not in skipped] if skipped else rows)
    return skipped


def _stored_copies(session: Session, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    e = FeedbackEvent.__table__
    out: dict[uuid.UUID, Any] = {}
    for i in range(0, len(event_ids), SQLITE_MAX_PARAMS):
        chunk = event_ids[i : i + SQLITE_MAX_PARAMS]
        for row in session.execute(
            select(e.c.event_id, *(e.c[c] for c in CONTENT_COLUMNS)).where(e.c.event_id.in_(chunk))
        ).mappings():
            out[row["event_id"]] = row
    return out


def _conflict_letter(
    message: InboundMessage, event_id: uuid.UUID, stored: Any, new: Any, where: str
) -> dict[str, Any]:
    diffs = _differences(stored, new)
    detail = f"event {event_id} {where} with different content ({', '.join(diffs)}); the first copy is kept: " + (
        "; ".join(f"{c} {stored[c]!r} stored, {new[c]!r} now" for c in diffs)
    )
    return _dead_letter_row(
        message, REASON_CONFLICTING_DUPLICATE, detail, payload=_content_json(new), stored=_content_json(stored)
    )


def _typed_row(message: InboundMessage, event_id: str) -> dict[str, Any]:
    """The generic row (``_event_row``) of one event of ``message``, decoded again (for a dead letter)."""
    _, payload = contract.decode(message.topic, message.payload)
    assert isinstance(payload, contract.EventBatch)
    return next(_event_row(e, message.received_at) for e in payload.events if str(e.event_id) == event_id)


class _EventParams:
    """A transaction's events as ``sqlite_events`` parameters by event id text (on PostgreSQL each with its
    ``pg_writer.copy_line``), stored by one executemany (SQLite) or one COPY (PostgreSQL). The dead
    letters' rows are decoded again from their messages (rare).

    While every message so far was an ``EventParams`` taken whole with ids new here (``exact``), they are
    kept as they are (``whole``), not as one dict per event: the writer then binds the parameters the
    preparer flattened (``sqlite_events.Ahead``) and never needs the dicts of a packed ``EventParams``."""

    def __init__(self, dialect: str) -> None:
        self.postgresql = dialect == "postgresql"
        self.rows: dict[str, dict[str, Any]] = {}  # once not exact: every event by its id
        self.came_in: dict[str, InboundMessage] = {}  # every id, in order
        self.whole: list[sqlite_events.EventParams] = []  # while exact: the EventParams taken, in order
        self.events = 0  # their events
        self.exact = True

    def __bool__(self) -> bool:
        return bool(self.came_in)

    def _unpack(self) -> None:
        """No longer exact: the events taken whole go into ``rows`` as well."""
        if self.exact:
            self.exact = False
            for params in self.whole:
                self.rows.update(zip(params.ids, params.events, strict=True))

    def add(self, message: InboundMessage, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Take a message's generic rows (``_event_row``); returns dead letters for ids that came twice
        with other content."""
        self._unpack()
        if not self.postgresql:
            return self._add(message, [sqlite_events.params_of(row) for row in rows])
        events = [sqlite_events.params_of(row, pg_writer.time_text(row["received_at"])) for row in rows]
        return self._add(message, pg_writer.with_lines(events))

    def add_params(self, message: InboundMessage, params: sqlite_events.EventParams) -> list[dict[str, Any]]:
        """Take an ``EventParams``; returns dead letters as ``add`` does."""
        ids = params.ids
        if self.exact and self.came_in.keys().isdisjoint(ids) and len(set(ids)) == len(ids):  # the usual case
            self.came_in.update(dict.fromkeys(ids, message))
            self.whole.append(params)
            self.events += len(ids)
            return []
        self._unpack()
        return self._add(message, params.events)

    def _add(self, message: InboundMessage, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [e["event_id"] for e in events]
        if self.rows.keys().isdisjoint(ids) and len(set(ids)) == len(ids):  # at C speed
            self.rows.update(zip(ids, events, strict=True))
            self.came_in.update(dict.fromkeys(ids, message))
            return []
        dead = []
        for event_id, event in zip(ids, events, strict=True):
            first = self.rows.get(event_id)
            if first is None:
                self.rows[event_id] = event
                self.came_in[event_id] = message
            elif not sqlite_events.same_content(first, event):
                dead.append(_conflict_letter(message, uuid.UUID(event_id), _typed_row(self.came_in[event_id], event_id),
                                             _typed_row(message, event_id), "came twice in one batch"))
        return dead

    def _events(self) -> list[dict[str, Any]]:
        """Every event's parameters, in order (made from packed ``EventParams`` if need be)."""
        if self.exact:
            return [event for params in self.whole for event in params.events]
        return list(self.rows.values())

    def store(self, session: Session, event_times: dict[str, datetime],
              ahead: sqlite_events.Ahead | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Insert the new ones, add them to the rollups and move the senders' ``event_times``; (how many
        were inserted, dead letters for ids stored before with other content). ``ahead``: what the
        preparer made of the batch's EventParams (SQLite), used if the rows are exactly those."""
        session.flush()
        if self.postgresql:  # rollups and device times in the same statement
            skipped = pg_writer.copy_events(session, [e["copy_line"] for e in self._events()], event_times)
            inserted = len(self.came_in) - len(skipped)
        else:
            raw = session.connection().connection.driver_connection
            assert raw is not None
            if ahead is not None and not (self.exact and (len(self.whole), self.events) == (ahead.sources, ahead.events)):
                ahead = None  # a message dropped (another station's, retired, a seq jump) or an id repeated
            ids = list(self.came_in)
            events: list[dict[str, Any]] | None = None  # the dicts, made only if the flat list or the cells are not
            if ahead is not None:
                skipped = sqlite_events.insert(raw, ids, ahead.params)
            else:
                events = self._events()
                skipped = sqlite_events.insert(raw, ids, sqlite_events.flat_params(events))
            if ahead is not None and not skipped:
                sqlite_events.write(session, raw, ahead.cells)
            else:  # only the rows really inserted: a redelivery adds nothing
                events = self._events() if events is None else events
                sqlite_events.rollup(session, raw, [e for e in events if e["event_id"] not in skipped])
            if event_times:
                session.execute(_LAST_EVENT_UPDATE, [{"b_id": d, "b_at": at} for d, at in event_times.items()])
            inserted = len(ids) - len(skipped)
        dead = []
        if skipped:
            repeated = [uuid.UUID(event_id) for event_id in self.came_in if event_id in skipped]
            for event_id, stored in _stored_copies(session, repeated).items():
                new_row = _typed_row(self.came_in[str(event_id)], str(event_id))
                if _differences(stored, new_row):
                    dead.append(_conflict_letter(self.came_in[str(event_id)], event_id, stored, new_row,
                                                 "was stored before"))
        return inserted, dead


# --------------------------------------------------------------------- dead letters


def _store_dead_letters(session: Session, rows: list[dict[str, Any]]) -> None:
    """One row per distinct refused message: a repeat counts up and moves last_seen_at."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        first = merged.get(row["digest"])
        if first is None:
            merged[row["digest"]] = dict(row)
        else:
            first["count"] += 1
            first["last_seen_at"] = max(first["last_seen_at"], row["last_seen_at"])
    table = DeadLetter.__table__
    stmt = _dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["digest"],
        set_={"count": table.c["count"] + stmt.excluded["count"], "last_seen_at": stmt.excluded.last_seen_at},
    )
    session.execute(stmt, list(merged.values()))
    for row in rows:
        _LOGGER.warning("dead letter from %s: %s: %s", row["topic"], row["reason"], row["detail"])


# --------------------------------------------------------------------- the batch


@dataclass
class Decoded:
    """A batch after the contract checks, before the database: what ``prepare`` found."""

    dead: list[dict[str, Any]]
    payloads: list[tuple[InboundMessage, contract.EventBatch | contract.StatusHeartbeat | sqlite_events.EventParams]]
    """``EventParams`` (``prepare(..., "sqlite" or "postgresql")``) for most events messages there."""
    rows: list[list[dict[str, Any]] | None] = field(default_factory=list)
    """Per payload: an ``EventBatch``'s rows (``_event_row``), made here too so the writer need not."""
    ahead: sqlite_events.Ahead | None = None
    """SQLite: the INSERT's parameters and rollup cells of every ``EventParams`` here (``sqlite_events.ahead``)."""


class PreparedBatch(list[InboundMessage]):
    """The messages of one transaction with their ``Decoded`` form made in advance.

    The consumer decodes the next batch in its own thread while the writer waits
    for the database with the current one; ``handle_batch`` then skips decoding.
    """

    decoded: Decoded

    def __init__(self, messages: Sequence[InboundMessage], dialect: str | None = None,
                 decoder: decoding.Decoder | None = None) -> None:
        super().__init__(messages)
        self.decoded = prepare(self, dialect, decoder)


def _fast_params(parts: contract.TopicParts, payload: bytes, received_at: datetime,
                 dialect: str) -> sqlite_events.EventParams | None:
    postgresql = dialect == "postgresql"
    params = sqlite_events.decode(
        parts, payload, (pg_writer.time_text if postgresql else sqlite_events.time_text)(received_at))
    if params is not None and postgresql:
        pg_writer.with_lines(params.events)
    return params


def arrival_params(topic: str, payload: bytes, received_at: datetime,
                   dialect: str | None) -> sqlite_events.EventParams | None:
    """An events message's ``EventParams``, made as it arrives (the consumer's network thread): the
    preparer then only gathers them. One message at a time, so no thread holds the interpreter for a
    whole transaction's decoding while the writer waits to take it back after each database call.
    None: anything else, or what the fast schema declines (``prepare`` then judges it)."""
    if dialect not in ("sqlite", "postgresql") or not topic.endswith("/events"):
        return None
    try:
        return _fast_params(contract.parse_topic(topic), payload, received_at, dialect)
    except ContractError:
        return None


def _decoded_apart(messages: Sequence[InboundMessage],
                   decoder: decoding.Decoder) -> tuple[dict[int, sqlite_events.EventParams | None], sqlite_events.Ahead | None]:
    """SQLite: the events messages' ``EventParams`` (by position) and their ``Ahead``, made by the decoding
    process when enough events are still to decode (``decoding.MIN_EVENTS``); else, or if it declines, none."""
    at = [i for i, m in enumerate(messages) if m.topic.endswith("/events")]
    if sum(messages[i].events for i in at if messages[i].params is None) < decoding.MIN_EVENTS:
        return {}, None
    answer = decoder.decode([(messages[i].topic, messages[i].payload, messages[i].received_at) for i in at])
    if answer is None:
        return {}, None
    params, ahead = answer
    return dict(zip(at, params, strict=True)), ahead


def prepare(messages: Sequence[InboundMessage], dialect: str | None = None, decoder: decoding.Decoder | None = None) -> Decoded:
    """The contract checks of every message (topic, JSON, schema); no database. For ``dialect``
    sqlite, events straight into the INSERT's parameters where they can (``sqlite_events``), by the
    decoding process (``decoder``) if there is one and it is worth it."""
    apart, ahead_apart = _decoded_apart(messages, decoder) if decoder is not None and dialect == "sqlite" else ({}, None)
    dead: list[dict[str, Any]] = []
    decoded: list[tuple[InboundMessage, contract.EventBatch | contract.StatusHeartbeat | sqlite_events.EventParams]] = []
    for i, message in enumerate(messages):
        try:
            parts = contract.parse_topic(message.topic)
            channel = parts.channel
            if channel not in ("events", "status"):
                dead.append(
                    _dead_letter_row(message, REASON_UNEXPECTED_CHANNEL, f"the ingest reads events and status, not {channel}")
                )
                continue
            if dialect in ("sqlite", "postgresql") and channel == "events":
                if apart:
                    params = apart.get(i)
                else:
                    params = message.params or _fast_params(parts, message.payload, message.received_at, dialect)
                if params is not None:
                    decoded.append((message, params))
                    continue
            _, payload = contract.decode(message.topic, message.payload)
        except ContractError as exc:
            dead.append(_dead_letter_row(message, exc.reason, exc.detail))
            continue
        assert isinstance(payload, (contract.EventBatch, contract.StatusHeartbeat))
        decoded.append((message, payload))
    rows = [[_event_row(e, m.received_at) for e in p.events] if isinstance(p, contract.EventBatch) else None
            for m, p in decoded]
    if apart:
        ahead = ahead_apart
    elif dialect == "sqlite":
        ahead = sqlite_events.ahead([p for _, p in decoded if isinstance(p, sqlite_events.EventParams)])
    else:
        ahead = None
    return Decoded(dead, decoded, rows, ahead)


def handle_batch(session: Session, messages: Sequence[InboundMessage]) -> BatchResult:
    """Store one batch of MQTT messages in ``session``; the caller commits (then acks).

    Every message ends up as event rows, a device status update, or a dead
    letter; only a database error escapes, and then nothing of the batch may be
    acknowledged. Statuses are applied in arrival order. A ``PreparedBatch`` is
    not decoded again.
    """
    result = BatchResult(messages=len(messages))
    dialect = session.get_bind().dialect.name
    ready = messages.decoded if isinstance(messages, PreparedBatch) else prepare(messages, dialect)
    dead = list(ready.dead)
    decoded = ready.payloads

    now = utcnow()
    senders: dict[str, str] = {}
    for _, payload in decoded:
        senders.setdefault(payload.device_id, payload.station_id)
    known = _register(session, senders, now) if senders else {}

    ceilings = seq_ceilings([p for _, p in decoded], {d: k.stored_seq for d, k in known.items()})
    sink = _EventParams(dialect)
    last_event_at: dict[str, datetime] = {}
    statuses: list[tuple[InboundMessage, contract.StatusHeartbeat]] = []
    for i, (message, payload) in enumerate(decoded):
        device = known[payload.device_id]
        if device.station_id != payload.station_id:
            dead.append(
                _dead_letter_row(
                    message,
                    REASON_DEVICE_STATION_MISMATCH,
                    f"device {payload.device_id} belongs to station {device.station_id}, not {payload.station_id}",
                )
            )
            continue
        if device.state == "retired":
            dead.append(_dead_letter_row(message, REASON_DEVICE_RETIRED, f"device {payload.device_id} is retired"))
            continue
        if isinstance(payload, contract.StatusHeartbeat):
            statuses.append((message, payload))
            continue
        made = ready.rows[i] if i < len(ready.rows) else None
        if isinstance(payload, sqlite_events.EventParams):
            if below_jump(ceilings, payload.device_id, payload.max_seq):
                result.events += payload.count
                dead.extend(sink.add_params(message, payload))
                _latest(last_event_at, payload.device_id, message.received_at)
                continue
            _, again = contract.decode(message.topic, message.payload)  # a seq jump: the generic path says which
            assert isinstance(again, contract.EventBatch)
            payload = again
        result.events += len(payload.events)
        events, jumped = split_jumps(payload, ceilings)
        if jumped:
            dead.append(_dead_letter_row(message, REASON_SEQ_JUMP, jumped))
            result.events -= len(payload.events) - len(events)
        if made is None or jumped:
            made = [_event_row(e, message.received_at) for e in events]
        dead.extend(sink.add(message, made))
        _latest(last_event_at, payload.device_id, message.received_at)

    if sink:
        result.inserted, conflicts = sink.store(session, last_event_at, ready.ahead)
        result.duplicates = result.events - result.inserted
        dead.extend(conflicts)
    if statuses:
        _apply_statuses(session, statuses, known)
        result.statuses = len(statuses)
    if dead:
        _store_dead_letters(session, dead)
        result.dead_lettered = len(dead)
    session.flush()
    return result


def _latest(times: dict[str, datetime], device_id: str, at: datetime) -> None:
    previous = times.get(device_id)
    if previous is None or at > previous:
        times[device_id] = at


_AT = bindparam("b_at", type_=Device.__table__.c.last_event_at.type)
_LAST_EVENT_UPDATE = (
    update(Device.__table__).where(Device.__table__.c.id == bindparam("b_id"))
    .values(last_event_at=_forward(Device.__table__.c.last_event_at, _AT),
            last_seen_at=_forward(Device.__table__.c.last_seen_at, _AT))
)


def store_batch(session_factory: sessionmaker[Session], messages: Sequence[InboundMessage]) -> BatchResult:
    """``handle_batch`` in its own transaction, committed before returning."""
    with session_factory() as session:
        result = handle_batch(session, messages)
        session.commit()
        pg_writer.temp_table_committed(session)
    return result


def store_dead_letter(
    session_factory: sessionmaker[Session], message: InboundMessage, reason: str, detail: str
) -> None:
    """Dead-letter one message in its own transaction (a message that could not be stored otherwise)."""
    with session_factory() as session:
        _store_dead_letters(session, [_dead_letter_row(message, reason, detail)])
        session.commit()


def store_channel_rows(
    session: Session, message: InboundMessage, rows: list[dict[str, Any]]
) -> tuple[set[uuid.UUID], dict[uuid.UUID, str]]:
    """Answers that came in through another channel than a kiosk's MQTT (the web survey, the
    import API; fleet_server.channels): the same path as ``handle_batch``'s events -- stored
    once by ``event_id``, rolled up in the same transaction, a second copy with other content
    dead-lettered ``conflicting_duplicate`` -- without devices, seqs or statuses.

    ``rows`` are ``_event_row``-shaped dicts (``device_id`` and ``seq`` None); ``message`` is
    what a dead letter records (its topic names the channel, e.g. ``api/v1/answers``).
    Returns the ids inserted and, for each conflicting id, the dead letter's detail. The caller commits."""
    skipped = _insert_and_roll_up(session, rows) if rows else set()
    inserted = {r["event_id"] for r in rows} - skipped
    conflicts: dict[uuid.UUID, str] = {}
    repeated = [r["event_id"] for r in rows if r["event_id"] in skipped]
    if repeated:
        by_id = {r["event_id"]: r for r in rows}
        dead = []
        for event_id, stored in _stored_copies(session, repeated).items():
            if _differences(stored, by_id[event_id]):
                letter = _conflict_letter(message, event_id, stored, by_id[event_id], "was stored before")
                conflicts[event_id] = letter["detail"]
                dead.append(letter)
        if dead:
            _store_dead_letters(session, dead)
    session.flush()
    return inserted, conflicts


def store_channel_dead_letter(session: Session, message: InboundMessage, reason: str, detail: str) -> None:
    """Dead-letter one refused channel message in ``session`` (the caller commits)."""
    _store_dead_letters(session, [_dead_letter_row(message, reason, detail)])
