"""The ingest's PostgreSQL statements: events, their rollups and the senders' event times in one round trip.

Why: on a loaded machine every round trip costs a wake-up of the server process and of
the writer (and the GIL again), several milliseconds each; the writer is serial, so
they add up to more than the database's own work. A transaction here makes:

1. the senders' rows, with BEGIN in the same pipeline (``known_devices``);
2. a COPY of the new rows into a temp table (made once per connection): text encoded per event as
   its message arrived (``copy_line``), so the writer only streams it;
3. one statement that inserts them (``ON CONFLICT (event_id) DO NOTHING``), adds the rows
   it really inserted to ``station_hourly``, ``channel_hourly`` and ``followup_hourly``
   (grouped in SQL, ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE``), moves
   the senders' ``last_event_at``/``last_seen_at``, and answers with the ids it skipped;
4. COMMIT (the caller's).

Exactly once holds as before: the rollups read the INSERT's own ``RETURNING`` (a
redelivered event is not returned), in the same statement of the same transaction. The
figures equal ``rollups.add_events``' to the row (tests/server/test_pg_rollups_sql.py):
the UTC hour is ``date_trunc('hour', ts, 'UTC')``, a follow-up's smiley is the one
inserted with it or the one stored before, else ``rollups.UNKNOWN_SMILEY``; cells are
written in key order, as ``add_events`` does, so concurrent writers lock them in one order.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy.orm import Session

from fleet_server.ingest.sqlite_events import COLUMNS
from fleet_server.models import ChannelHour, Device, FeedbackEvent, FollowupHour, StationHour
from fleet_server.results.rollups import COUNT_COLUMNS, UNKNOWN_SMILEY

_PG_TYPES = {
    "UUID": "uuid",
    "VARCHAR": "text",
    "TEXT": "text",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "SMALLINT": "int2",
    "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "FLOAT": "float8",
    "DOUBLE PRECISION": "float8",
}


def _copy_types(session: Session, columns: Sequence[str]) -> list[str]:
    table = FeedbackEvent.__table__
    dialect = session.get_bind().dialect
    return [_PG_TYPES[table.c[c].type.compile(dialect).split("(")[0]] for c in columns]


_TEMP_READY: weakref.WeakSet[Any] = weakref.WeakSet()
"""psycopg connections whose ``ingest_events_in`` was created in a committed transaction (it then lives
as long as the connection); the others create it (IF NOT EXISTS) in the transaction that needs it."""
_TEMP_CREATED = "palaute_ingest_temp_created"  # session.info: the connection that created it in this session
_TEMP_USED = "palaute_ingest_temp_used"  # session.info: this session's transaction has rows in it


def _raw(session: Session) -> Any:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    return raw


_KNOWN_DEVICES = (
    "SELECT d.id, d.station_id, d.state, d.online, d.status_connected_at, d.status_sent_at, "
    "d.status_received_at, d.last_seq, "
    f"(SELECT max(f.seq) FROM {FeedbackEvent.__tablename__} f WHERE f.device_id = d.id) AS max_seq "
    f"FROM {Device.__tablename__} d WHERE d.id = ANY(%s)"
)
"""``store._KNOWN_DEVICES`` in PostgreSQL's words (the same columns, the same seq ceiling)."""


def known_devices(session: Session, ids: list[str]) -> list[Any]:
    """The senders' rows (as ``store._KNOWN_DEVICES`` reads them); when the transaction has not begun,
    its BEGIN goes in the same pipeline: one round trip, not two."""
    raw = _raw(session)
    with raw.pipeline(), raw.cursor(row_factory=namedtuple_row) as cur:
        cur.execute(_KNOWN_DEVICES, (ids,))
        return cur.fetchall()


_LOCKED_STATUSES = (
    "SELECT id, online, status_connected_at, status_sent_at, status_received_at "
    f"FROM {Device.__tablename__} WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
)


def locked_statuses(session: Session, ids: list[str]) -> list[Any]:
    """Lock the rows of the senders whose statuses this transaction applies, then read their last
    status again: with two writers, the other one may have committed a newer status since this
    transaction began (a new snapshot per statement, READ COMMITTED), and it must not apply an
    older one after it. Taken after the events' statement, which locks rollup cells and then the
    senders' rows: every transaction locks in that order, so two writers never deadlock here."""
    with _raw(session).cursor(row_factory=namedtuple_row) as cur:
        cur.execute(_LOCKED_STATUSES, (sorted(ids),))
        return cur.fetchall()


def _rollup_sql() -> str:
    """The CTEs that add the rows of ``ins`` (the INSERT's RETURNING) to the three rollup tables."""
    flags = {"c": "NOT out_of_hours AND NOT burst", "r": "NOT out_of_hours AND burst", "o": "out_of_hours"}
    counts = ", ".join(
        f"count(*) FILTER (WHERE {flags[col[0]]} AND value = {col[1]})::int AS {col}" for col in COUNT_COLUMNS
    )
    cols = ", ".join(COUNT_COLUMNS)
    sums = ", ".join(f"sum({c})::int" for c in COUNT_COLUMNS)

    def add(table: str) -> str:
        return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNT_COLUMNS)

    station, channel, followup = StationHour.__tablename__, ChannelHour.__tablename__, FollowupHour.__tablename__
    return (
        "smileys AS (SELECT station_id, date_trunc('hour', ts, 'UTC') AS hour, "
        f"coalesce(channel, 'kiosk') AS channel, {counts} FROM ins WHERE kind = 'smiley' GROUP BY 1, 2, 3), "
        f"station_cells AS (INSERT INTO {station} (station_id, hour, {cols}) "
        f"SELECT station_id, hour, {sums} FROM smileys GROUP BY 1, 2 ORDER BY 1, 2 "
        f"ON CONFLICT (station_id, hour) DO UPDATE SET {add(station)}), "
        f"channel_cells AS (INSERT INTO {channel} (station_id, hour, channel, {cols}) "
        f"SELECT station_id, hour, channel, {cols} FROM smileys ORDER BY 1, 2, 3 "
        f"ON CONFLICT (station_id, hour, channel) DO UPDATE SET {add(channel)}), "
        f"followup_cells AS (INSERT INTO {followup} (station_id, hour, smiley, question_id, option_id, n) "
        "SELECT f.station_id, date_trunc('hour', f.ts, 'UTC'), "
        f"CASE WHEN f.answer_to IS NULL THEN {UNKNOWN_SMILEY} ELSE coalesce(s.value, e.value, {UNKNOWN_SMILEY}) END, "
        "f.question_id, f.option_id, count(*)::int FROM ins f "
        "LEFT JOIN ins s ON s.event_id = f.answer_to AND s.kind = 'smiley' "
        f"LEFT JOIN {FeedbackEvent.__tablename__} e ON e.event_id = f.answer_to AND e.kind = 'smiley' "
        "WHERE f.kind = 'followup' GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 "
        f"ON CONFLICT (station_id, hour, smiley, question_id, option_id) DO UPDATE SET n = {followup}.n + excluded.n)"
    )


_ROLLUPS = _rollup_sql()
_RETURNED = "event_id, station_id, kind, value, option_id, question_id, ts, answer_to, burst, out_of_hours, channel"
_DEVICE_TIMES = (
    # greatest(): never back; two writers' transactions may commit out of order (NULLs are ignored)
    f"device_times AS (UPDATE {Device.__tablename__} d SET last_event_at = greatest(d.last_event_at, v.at), "
    "last_seen_at = greatest(d.last_seen_at, v.at) "
    "FROM unnest(%s::text[], %s::timestamptz[]) AS v(id, at) WHERE d.id = v.id)"
)


def time_text(value: datetime) -> str:
    """A time as COPY's text for a timestamptz (ISO 8601 with its offset)."""
    return value.isoformat()


_NULL = "\\N"


def copy_line(e: Mapping[str, Any]) -> str:
    """One event's parameters (``sqlite_events.decode``'s dict, ``received_at`` as ``time_text``) as a line
    of COPY's text format, in ``COLUMNS`` order.

    Nothing is escaped: every text the contract lets into an event is a slug, a literal, a canonical
    uuid or a wire time, so no tab, newline or backslash can occur (``copy_events`` checks the whole
    text once). Floats as ``repr``: the shortest text that reads back as the same double."""
    smiley = e["kind"] == "smiley"
    answer_to, epoch, boot_id, mono_s, offset = e["answer_to"], e["epoch"], e["boot_id"], e["mono_s"], e["ts_offset_s"]
    return (
        f'{e["event_id"]}\t{e["station_id"]}\t{e["device_id"]}\t{e["kind"]}\t'
        f'{e["value"] if smiley else _NULL}\t{_NULL if smiley else e["value"]}\t{e["question_id"]}\t{e["lang"]}\t'
        f'{e["ts_text"]}\t{e["received_at"]}\t{e["seq"]}\t{"t" if e["clock_synced"] else "f"}\t'
        f'{e["survey_version"]}\t{_NULL if answer_to is None else answer_to}\t{"t" if e["burst"] else "f"}\t'
        f'{"t" if e["out_of_hours"] else "f"}\t{_NULL if epoch is None else epoch}\t'
        f'{_NULL if boot_id is None else boot_id}\t{_NULL if mono_s is None else repr(mono_s)}\t'
        f'{_NULL if offset is None else repr(offset)}\t{e["channel"]}\n'
    )


def with_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event (parameters) with its ``copy_line`` as ``"copy_line"``; made as the message arrives."""
    for event in events:
        event["copy_line"] = copy_line(event)
    return events


def _check_copy_text(text: str, lines: int) -> None:
    """``copy_line``'s promise for a whole COPY: one line per event, its columns, no escape but NULL."""
    if (text.count("\n") != lines or text.count("\t") != lines * (len(COLUMNS) - 1)
            or text.count("\\") != text.count(_NULL)):
        raise RuntimeError("an event's COPY text has a tab, newline or backslash of its own (copy_line escapes none)")


def _temp_table(session: Session, raw: Any, cur: Any) -> None:
    """``ingest_events_in`` exists and is empty for this batch."""
    if raw not in _TEMP_READY:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS ingest_events_in ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(COLUMNS)} FROM {FeedbackEvent.__tablename__} WITH NO DATA"
        )
        session.info[_TEMP_CREATED] = raw
    if session.info.get(_TEMP_USED):  # two batches in one transaction must not meet here
        cur.execute("DELETE FROM ingest_events_in")
    session.info[_TEMP_USED] = True


def _insert_from_temp(cur: Any, event_times: dict[str, datetime], skipped: str) -> list[Any]:
    """The one statement: insert what ``ingest_events_in`` holds, roll it up, move the senders' times;
    returns ``skipped`` (an expression of ``i.event_id``) for each row stored before."""
    names = ", ".join(COLUMNS)
    devices = sorted(event_times)
    cur.execute(
        f"WITH ins AS (INSERT INTO {FeedbackEvent.__tablename__} ({names}) SELECT {names} FROM ingest_events_in "
        f"ON CONFLICT (event_id) DO NOTHING RETURNING {_RETURNED}), {_ROLLUPS}, {_DEVICE_TIMES} "
        f"SELECT {skipped} FROM ingest_events_in i WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.event_id = i.event_id)",
        (devices, [event_times[d] for d in devices]),
    )
    return cur.fetchall()


def copy_events(session: Session, lines: Sequence[str], event_times: dict[str, datetime]) -> set[str]:
    """Insert events given as ``copy_line`` texts (distinct ids) whose event_id is new, add them to the
    rollups and set each sender's ``last_event_at``/``last_seen_at`` to ``event_times[device]``;
    returns the ids (as text) stored already."""
    text = "".join(lines)
    _check_copy_text(text, len(lines))
    raw = _raw(session)
    with raw.cursor() as cur:
        _temp_table(session, raw, cur)
        with cur.copy(f"COPY ingest_events_in ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            copy.write(text.encode())
        return {r[0] for r in _insert_from_temp(cur, event_times, "i.event_id::text")}


def insert_events(session: Session, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert the rows whose event_id is new and add them to the rollups; returns the ids stored already.

    ``rows`` have distinct event ids (``store._event_row`` dicts: the answers of other channels,
    which have no sending device)."""
    raw = _raw(session)
    getter = itemgetter(*COLUMNS)
    with raw.cursor(binary=True) as cur:
        _temp_table(session, raw, cur)
        with cur.copy(f"COPY ingest_events_in ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_copy_types(session, COLUMNS))
            for row in rows:
                copy.write_row(getter(row))
        # uuid_send: the 16 raw bytes, cheaper to read back than a uuid.UUID per row
        return {uuid.UUID(bytes=bytes(r[0])) for r in _insert_from_temp(cur, {}, "uuid_send(i.event_id)")}


def temp_table_committed(session: Session) -> None:
    """After a commit: the temp table this session created now outlives the transaction."""
    raw = session.info.pop(_TEMP_CREATED, None)
    session.info.pop(_TEMP_USED, None)
    if raw is not None:
        _TEMP_READY.add(raw)
