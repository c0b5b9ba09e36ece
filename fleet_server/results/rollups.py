"""Hourly per-station rollups, kept up to date by the ingest in the same transaction.

The dashboard never scans ``feedback_events`` for its figures: it reads these
small tables (one row per station and UTC hour; one per station, hour, smiley,
question and option for follow-ups), so the overview over millions of events
answers in milliseconds.

Exactly-once: ``add_events`` is called by ``ingest.handle_batch`` with the rows
its ``INSERT ... ON CONFLICT (event_id) DO NOTHING ... RETURNING`` actually
inserted, inside the same transaction; a redelivered event is not returned, so
it is never added twice, and a rolled-back batch rolls its increments back too.
``rebuild`` recomputes the tables from the events (after an import, or to check).

Columns partition the smiley answers of an hour by value (1..4) and flag:
``c`` counted (in opening hours, not a flagged repeated press), ``r`` flagged
repeated press ("burst") in opening hours, ``o`` out of opening hours (flagged
``out_of_hours`` by the kiosk, repeated or not). ``c + r + o`` is every press.

``channel_hourly`` splits the same cells by channel (kiosk, web, phone, sms), in the same
statement of the same transaction: summed over its channels, each (station, hour) row of it
equals ``station_hourly``'s, exactly (tests/server/test_channel_rollups.py).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, inspect, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet_server.models import ChannelHour, FeedbackEvent, FollowupHour, StationHour

SMILEYS = (1, 2, 3, 4)
KINDS = ("c", "r", "o")
COUNT_COLUMNS = tuple(f"{k}{v}" for k in KINDS for v in SMILEYS)
_COLUMN = {(k, v): f"{k}{v}" for k in KINDS for v in SMILEYS}
UNKNOWN_SMILEY = 0
"""Follow-ups whose smiley the server has not seen are rolled up under smiley 0."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_HOUR = timedelta(hours=1)
_HOURS: dict[int, datetime] = {}
"""Hours since the epoch -> that UTC hour as a datetime: a batch's events share a few hours."""
_HOURS_KEPT = 100_000


def hour_of(ts: datetime) -> datetime:
    """The start of ``ts``'s UTC hour (``ts`` aware, any offset or zone; a naive one is local time).

    Whole hours since the epoch, in integers (an aware subtraction honours the offset,
    DST folds included), then one datetime per hour from a cache: no zone conversion
    and no new datetime per event.
    """
    try:
        n = (ts - _EPOCH) // _ONE_HOUR
    except TypeError:  # naive: as astimezone takes it, the machine's local time
        return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hour = _HOURS.get(n)
    if hour is None:
        if len(_HOURS) >= _HOURS_KEPT:
            _HOURS.clear()
        hour = _HOURS[n] = _EPOCH + n * _ONE_HOUR
    return hour


def flag_kind(burst: bool, out_of_hours: bool) -> str:
    if out_of_hours:
        return "o"
    return "r" if burst else "c"


_UPSERTS: dict[tuple[str, str], Any] = {}
_KEYS = {
    StationHour.__tablename__: ("station_id", "hour"),
    ChannelHour.__tablename__: ("station_id", "hour", "channel"),
    FollowupHour.__tablename__: ("station_id", "hour", "smiley", "question_id", "option_id"),
}


def _upsert(session: Session, table: Any) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET count = count + excluded.count``, made once per dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get((dialect, table.name))
    if stmt is None:
        insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        counts = COUNT_COLUMNS if table.name != FollowupHour.__tablename__ else ("n",)
        stmt = _UPSERTS[(dialect, table.name)] = insert.on_conflict_do_update(
            index_elements=list(_KEYS[table.name]),
            set_={col: table.c[col] + insert.excluded[col] for col in counts},
        )
    return stmt


def add_events(session: Session, rows: Iterable[Mapping[Any, Any]], sign: int = 1, *, channels: bool = True) -> None:
    """Add freshly inserted event rows (dicts with the feedback_events columns) to the rollups.

    ``sign=-1`` takes stored rows out again: an event whose time is corrected moves from
    its old hour to its new one (fleet_server.fleet.clock_corrections). ``channels=False``: not
    ``channel_hourly`` (``rebuild`` run by a migration older than that table)."""
    smiley_cells: dict[tuple[str, datetime], dict[str, int]] = {}
    channel_cells: dict[tuple[str, datetime, str], dict[str, int]] = {}
    followups: list[Mapping[str, Any]] = []
    smiley_of: dict[uuid.UUID, int] = {}
    for row in rows:
        if row["kind"] == "smiley":
            station, hour = row["station_id"], hour_of(row["ts"])
            if row["out_of_hours"]:
                column = _COLUMN["o", row["value"]]
            else:
                column = _COLUMN["r" if row["burst"] else "c", row["value"]]
            cell = smiley_cells.get((station, hour))
            if cell is None:
                cell = smiley_cells[(station, hour)] = dict.fromkeys(COUNT_COLUMNS, 0)
            cell[column] += sign
            key = (station, hour, row.get("channel") or "kiosk")  # rows read before channels: kiosk
            cell = channel_cells.get(key)
            if cell is None:
                cell = channel_cells[key] = dict.fromkeys(COUNT_COLUMNS, 0)
            cell[column] += sign
            smiley_of[row["event_id"]] = row["value"]
        else:
            followups.append(row)
    cells: dict[tuple, int] = defaultdict(int)
    if followups:
        missing = {r["answer_to"] for r in followups if r.get("answer_to") and r["answer_to"] not in smiley_of}
        if missing:
            e = FeedbackEvent
            for event_id, value in session.execute(
                select(e.event_id, e.value).where(e.event_id.in_(list(missing)), e.kind == "smiley")
            ):
                if value is not None:  # a smiley always has one
                    smiley_of[event_id] = value
        for r in followups:
            answer_to = r.get("answer_to")
            smiley = smiley_of.get(answer_to, UNKNOWN_SMILEY) if answer_to else UNKNOWN_SMILEY
            cells[(r["station_id"], hour_of(r["ts"]), smiley, r["question_id"], r["option_id"])] += sign
    write_cells(session, smiley_cells, channel_cells if channels else None, cells)


def write_cells(
    session: Session,
    smiley_cells: Mapping[tuple[str, datetime], Mapping[str, int]],
    channel_cells: Mapping[tuple[str, datetime, str], Mapping[str, int]] | None,
    followup_cells: Mapping[tuple[str, datetime, int, str, str], int],
) -> None:
    """Add counted cells to the rollup tables (one upsert per table): smiley cells by (station, hour),
    their split by (station, hour, channel) (None: not ``channel_hourly``), follow-up counts by
    (station, hour, smiley, question, option). The SQLite ingest counts its own (ingest.sqlite_events)."""
    if smiley_cells:
        session.execute(
            _upsert(session, StationHour.__table__),
            [{"station_id": s, "hour": h, **counts} for (s, h), counts in sorted(smiley_cells.items())],
        )
    if channel_cells:
        session.execute(_upsert(session, ChannelHour.__table__),
                        [{"station_id": s, "hour": h, "channel": ch, **counts}
                         for (s, h, ch), counts in sorted(channel_cells.items())])
    if followup_cells:
        session.execute(
            _upsert(session, FollowupHour.__table__),
            [
                {"station_id": s, "hour": h, "smiley": v, "question_id": q, "option_id": o, "n": n}
                for (s, h, v, q, o), n in sorted(followup_cells.items())
            ],
        )


def rebuild(session: Session, batch_size: int = 50_000) -> int:
    """Recompute both rollup tables from ``feedback_events``; returns the events read."""
    session.execute(delete(StationHour.__table__))
    session.execute(delete(FollowupHour.__table__))
    # An old migration (0300_rollups) runs this before channels existed: then without them.
    channels = inspect(session.connection()).has_table(ChannelHour.__tablename__)
    e = FeedbackEvent.__table__
    columns = [e.c.event_id, e.c.station_id, e.c.kind, e.c.value, e.c.option_id, e.c.question_id,
               e.c.ts, e.c.answer_to, e.c.burst, e.c.out_of_hours]
    if channels:
        session.execute(delete(ChannelHour.__table__))
        columns.append(e.c.channel)
    seen = 0
    # Smileys first, so every follow-up finds its smiley in the table.
    for kind in ("smiley", "followup"):
        result = session.execute(
            select(*columns).where(e.c.kind == kind).order_by(e.c.id).execution_options(yield_per=batch_size)
        )
        for chunk in result.mappings().partitions(batch_size):
            add_events(session, chunk, channels=channels)
            seen += len(chunk)
    return seen


def hour_bucket_sql(session: Session, column: Any) -> Any:
    """SQL for the start of ``column``'s UTC hour (used by checks and the benchmark)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%d %H:00:00", column)


def range_hours(start: datetime, end: datetime) -> list[datetime]:
    hours, h = [], hour_of(start)
    while h < end:
        hours.append(h)
        h += timedelta(hours=1)
    return hours


__all__ = ["COUNT_COLUMNS", "ChannelHour", "FollowupHour", "StationHour", "add_events", "literal_column", "rebuild"]
